//! Billing settings: the Stripe keys (`--stripe-secret-key`, `--stripe-webhook-secret`,
//! several while rolling) and the Stripe plans file (`--stripe-plans`), which maps each
//! paid plan to a Stripe price and each metered quantity to a Stripe meter's event name:
//!
//! ```toml
//! [prices]
//! pro = "price_1Q…"
//! enterprise = "price_1R…"
//!
//! [meters]
//! connection-minutes = "tandem_connection_minutes"
//! messages = "tandem_messages"
//! ```

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::control::plans::{Plans, DEFAULT_PLAN};
use crate::store::billing::Quantity;

/// A secret that `Debug` never shows.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself: hand it to Stripe's client or the HMAC only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(…)")
    }
}

/// Validated billing settings; the server bills only when these exist.
#[derive(Debug, Clone)]
pub struct BillingConfig {
    /// The Stripe API secret key.
    pub secret_key: Secret,
    /// The webhook endpoint's signing secrets (`whsec_…`); any may match.
    pub webhook_secrets: Vec<Secret>,
    /// Plan name → Stripe price id.
    pub prices: BTreeMap<String, String>,
    /// What is metered, and each quantity's meter event name.
    pub meters: Vec<(Quantity, String)>,
    /// Instead of api.stripe.com (tests point it at a local fake).
    pub api_base: Option<String>,
    /// How long an unpaid invoice keeps the paid plan before the tenant drops to free.
    pub grace_period: Duration,
    /// How often the meter outbox is worked on (and grace periods checked).
    pub meter_interval: Duration,
    /// How long after an hour ends its usage is taken as final and queued.
    pub meter_settle: Duration,
}

impl BillingConfig {
    /// The plan a Stripe price stands for.
    pub fn plan_of_price(&self, price: &str) -> Option<&str> {
        self.prices
            .iter()
            .find(|(_, p)| p.as_str() == price)
            .map(|(plan, _)| plan.as_str())
    }
}

/// Plan → Stripe price, and each metered quantity's meter event name.
pub type PricesAndMeters = (BTreeMap<String, String>, Vec<(Quantity, String)>);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PlansFile {
    #[serde(default)]
    prices: BTreeMap<String, String>,
    #[serde(default)]
    meters: BTreeMap<String, String>,
}

/// Prices and meters from a Stripe plans file's text, checked against `plans`.
pub fn parse_plans(text: &str, plans: &Plans) -> Result<PricesAndMeters, String> {
    let file: PlansFile = toml::from_str(text).map_err(|e| e.to_string())?;
    for (plan, price) in &file.prices {
        if plan == DEFAULT_PLAN {
            return Err(format!(
                "the {DEFAULT_PLAN} plan is what tenants fall back to and cannot have a price"
            ));
        }
        if !plans.contains(plan) {
            return Err(format!("prices: no plan named {plan}"));
        }
        if price.is_empty() {
            return Err(format!("prices: {plan} has an empty price"));
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    for price in file.prices.values() {
        if !seen.insert(price) {
            return Err(format!("prices: {price} is given to two plans"));
        }
    }
    let mut meters = Vec::new();
    for (name, event) in file.meters {
        let quantity = Quantity::parse(&name).ok_or_else(|| {
            let known: Vec<_> = Quantity::ALL.iter().map(|q| q.as_str()).collect();
            format!(
                "meters: unknown quantity {name} (known: {})",
                known.join(", ")
            )
        })?;
        if event.is_empty() || event.len() > 100 {
            return Err(format!(
                "meters: {name} needs an event name of 1-100 characters"
            ));
        }
        meters.push((quantity, event));
    }
    if file.prices.is_empty() {
        return Err("prices: name at least one plan's Stripe price".into());
    }
    Ok((file.prices, meters))
}

/// Reads a Stripe plans file (see [`parse_plans`]).
pub fn load_plans(path: &Path, plans: &Plans) -> Result<PricesAndMeters, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    parse_plans(&text, plans).map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plans_file_maps_prices_and_meters() {
        let (prices, meters) = parse_plans(
            "[prices]\npro = \"price_pro\"\n[meters]\nconnection-minutes = \"conn_min\"\n",
            &Plans::default(),
        )
        .unwrap();
        assert_eq!(prices["pro"], "price_pro");
        assert_eq!(meters, [(Quantity::ConnectionMinutes, "conn_min".into())]);
    }

    #[test]
    fn bad_plans_files_are_refused() {
        let plans = Plans::default();
        for bad in [
            "[prices]\nfree = \"price_1\"\n",
            "[prices]\nplatinum = \"price_1\"\n",
            "[prices]\npro = \"p\"\nenterprise = \"p\"\n",
            "[prices]\npro = \"p\"\n[meters]\nsmiles = \"s\"\n",
            "[meters]\nmessages = \"m\"\n",
            "[prices]\npro = \"p\"\n[extra]\n",
        ] {
            assert!(parse_plans(bad, &plans).is_err(), "{bad}");
        }
    }

    #[test]
    fn secrets_do_not_debug() {
        assert_eq!(format!("{:?}", Secret::new("sk_live_x")), "Secret(…)");
    }
}
