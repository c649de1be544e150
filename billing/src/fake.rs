//! A recording fake of [`Stripe`] for unit tests: every call is recorded in order, ids
//! are made up (`cus_fake_1`, …), and a test can make the next calls fail.

use std::collections::VecDeque;
use std::sync::Mutex;

use async_trait::async_trait;

use crate::{MeterEvent, NewCheckout, NewCustomer, NewPortal, Session, Stripe, StripeError};

/// One recorded call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    /// [`Stripe::create_customer`].
    Customer(NewCustomer),
    /// [`Stripe::create_checkout_session`].
    Checkout(NewCheckout),
    /// [`Stripe::create_portal_session`].
    Portal(NewPortal),
    /// [`Stripe::send_meter_event`].
    Meter(MeterEvent),
}

/// Records calls; answers with made-up ids, or with the failures queued by
/// [`RecordingStripe::fail_next`].
#[derive(Debug, Default)]
pub struct RecordingStripe {
    calls: Mutex<Vec<Call>>,
    failures: Mutex<VecDeque<StripeError>>,
}

impl RecordingStripe {
    /// A fake with nothing recorded.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        lock(&self.calls).clone()
    }

    /// The meter events sent so far (successful or not), in order.
    pub fn meter_events(&self) -> Vec<MeterEvent> {
        self.calls()
            .into_iter()
            .filter_map(|c| match c {
                Call::Meter(event) => Some(event),
                _ => None,
            })
            .collect()
    }

    /// Makes the next `n` calls fail with `error` (recorded all the same).
    pub fn fail_next(&self, n: usize, error: StripeError) {
        let mut failures = lock(&self.failures);
        failures.extend(std::iter::repeat_n(error, n));
    }

    fn record(&self, call: Call) -> Result<usize, StripeError> {
        let mut calls = lock(&self.calls);
        calls.push(call);
        let n = calls.len();
        drop(calls);
        match lock(&self.failures).pop_front() {
            Some(error) => Err(error),
            None => Ok(n),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[async_trait]
impl Stripe for RecordingStripe {
    async fn create_customer(&self, customer: &NewCustomer) -> Result<String, StripeError> {
        let n = self.record(Call::Customer(customer.clone()))?;
        Ok(format!("cus_fake_{n}"))
    }

    async fn create_checkout_session(
        &self,
        checkout: &NewCheckout,
    ) -> Result<Session, StripeError> {
        let n = self.record(Call::Checkout(checkout.clone()))?;
        Ok(Session {
            id: format!("cs_fake_{n}"),
            url: format!("https://checkout.stripe.test/cs_fake_{n}"),
        })
    }

    async fn create_portal_session(&self, portal: &NewPortal) -> Result<Session, StripeError> {
        let n = self.record(Call::Portal(portal.clone()))?;
        Ok(Session {
            id: format!("bps_fake_{n}"),
            url: format!("https://billing.stripe.test/bps_fake_{n}"),
        })
    }

    async fn send_meter_event(&self, event: &MeterEvent) -> Result<(), StripeError> {
        self.record(Call::Meter(event.clone())).map(|_| ())
    }
}
