//! The webhook events Tandem acts on, read from the raw JSON with serde_json (only the
//! fields used). async-stripe's `async-stripe-webhook` crate would deserialize every
//! event type of the API: far more code to compile for five events, and an event whose
//! object does not match its generated types would fail whole instead of giving the
//! fields we need. Field placement follows API versions from 2025-03-31.basil on (a
//! subscription's period is on its items; an invoice's subscription is under
//! `parent.subscription_details`), with the older top-level fields as a fallback.

use serde_json::Value;

/// One webhook delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// `evt_…`, unique per event: deliveries are de-duplicated by it.
    pub id: String,
    /// `checkout.session.completed`, …
    pub kind: String,
    /// When Stripe created the event, unix seconds (orders state changes).
    pub created: i64,
    /// What it says, for the kinds Tandem acts on.
    pub data: EventData,
}

/// The part of an event Tandem acts on.
#[derive(Debug, Clone, PartialEq)]
pub enum EventData {
    /// `checkout.session.completed`.
    CheckoutCompleted(CheckoutCompleted),
    /// `customer.subscription.created|updated|deleted` (deleted: status `canceled`).
    Subscription(Subscription),
    /// `invoice.payment_failed`.
    PaymentFailed(Invoice),
    /// Any other event: acknowledged and recorded, nothing else.
    Other,
}

/// A completed Checkout session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutCompleted {
    /// `client_reference_id`: the tenant id Tandem put there.
    pub tenant_id: Option<String>,
    /// The customer.
    pub customer_id: Option<String>,
    /// The subscription it created.
    pub subscription_id: Option<String>,
    /// `metadata.plan`: the plan Tandem's session was for.
    pub plan: Option<String>,
}

/// A subscription's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// `sub_…`.
    pub id: String,
    /// The customer.
    pub customer_id: String,
    /// Stripe's status (`active`, `trialing`, `past_due`, `canceled`, `unpaid`, …).
    pub status: String,
    /// The prices of its items.
    pub price_ids: Vec<String>,
    /// The end of the current period, unix seconds (the renewal date).
    pub current_period_end: Option<i64>,
    /// When it started (or its current period did), unix seconds: metering starts
    /// there.
    pub start: Option<i64>,
    /// Whether it ends at the period's end.
    pub cancel_at_period_end: bool,
    /// `metadata.tenant_id`, set by Tandem's Checkout session.
    pub tenant_id: Option<String>,
}

/// An invoice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invoice {
    /// `in_…`.
    pub id: String,
    /// The customer.
    pub customer_id: String,
    /// The subscription it bills, if any.
    pub subscription_id: Option<String>,
}

/// Why a body is not an event Tandem can read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a Stripe event: {0}")]
pub struct EventError(pub String);

fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_owned)
}

/// An id that may be expanded into an object.
fn id_of(v: &Value, key: &str) -> Option<String> {
    match v.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o.get("id").and_then(Value::as_str).map(str::to_owned),
        _ => None,
    }
}

fn need(v: Option<String>, what: &str) -> Result<String, EventError> {
    v.ok_or_else(|| EventError(format!("{what} missing")))
}

/// Reads a webhook body.
pub fn parse(body: &[u8]) -> Result<Event, EventError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| EventError(e.to_string()))?;
    let id = need(text(&v, "id"), "id")?;
    let kind = need(text(&v, "type"), "type")?;
    let created = v.get("created").and_then(Value::as_i64).unwrap_or(0);
    let object = v
        .get("data")
        .and_then(|d| d.get("object"))
        .ok_or_else(|| EventError("data.object missing".into()))?;
    let data = match kind.as_str() {
        "checkout.session.completed" => EventData::CheckoutCompleted(CheckoutCompleted {
            tenant_id: text(object, "client_reference_id"),
            customer_id: id_of(object, "customer"),
            subscription_id: id_of(object, "subscription"),
            plan: object.get("metadata").and_then(|m| text(m, "plan")),
        }),
        "customer.subscription.created"
        | "customer.subscription.updated"
        | "customer.subscription.deleted" => EventData::Subscription(subscription(object)?),
        "invoice.payment_failed" => EventData::PaymentFailed(Invoice {
            id: need(text(object, "id"), "invoice id")?,
            customer_id: need(id_of(object, "customer"), "invoice customer")?,
            subscription_id: object
                .get("parent")
                .and_then(|p| p.get("subscription_details"))
                .and_then(|d| id_of(d, "subscription"))
                .or_else(|| id_of(object, "subscription")),
        }),
        _ => EventData::Other,
    };
    Ok(Event {
        id,
        kind,
        created,
        data,
    })
}

fn subscription(object: &Value) -> Result<Subscription, EventError> {
    let items: Vec<&Value> = object
        .get("items")
        .and_then(|i| i.get("data"))
        .and_then(Value::as_array)
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    let price_ids = items
        .iter()
        .filter_map(|item| id_of(item, "price"))
        .collect();
    let from_items = |key: &str| items.iter().filter_map(|i| i.get(key)?.as_i64()).max();
    Ok(Subscription {
        id: need(text(object, "id"), "subscription id")?,
        customer_id: need(id_of(object, "customer"), "subscription customer")?,
        status: need(text(object, "status"), "subscription status")?,
        price_ids,
        current_period_end: from_items("current_period_end")
            .or_else(|| object.get("current_period_end")?.as_i64()),
        start: object
            .get("start_date")
            .and_then(Value::as_i64)
            .or_else(|| from_items("current_period_start"))
            .or_else(|| object.get("current_period_start")?.as_i64()),
        cancel_at_period_end: object
            .get("cancel_at_period_end")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        tenant_id: object.get("metadata").and_then(|m| text(m, "tenant_id")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_basil_subscription() {
        let body = br#"{"id":"evt_1","type":"customer.subscription.updated","created":10,
            "data":{"object":{"id":"sub_1","object":"subscription","customer":"cus_1",
            "status":"active","start_date":100,"cancel_at_period_end":true,
            "metadata":{"tenant_id":"ten_1"},
            "items":{"data":[{"price":{"id":"price_pro"},"current_period_start":100,
            "current_period_end":200}]}}}}"#;
        let event = parse(body).unwrap();
        assert_eq!(event.id, "evt_1");
        assert_eq!(event.created, 10);
        let EventData::Subscription(sub) = event.data else {
            panic!("{event:?}")
        };
        assert_eq!(sub.price_ids, ["price_pro"]);
        assert_eq!(sub.current_period_end, Some(200));
        assert_eq!(sub.start, Some(100));
        assert!(sub.cancel_at_period_end);
        assert_eq!(sub.tenant_id.as_deref(), Some("ten_1"));
    }

    #[test]
    fn reads_checkout_and_invoices_and_ignores_the_rest() {
        let body = br#"{"id":"evt_2","type":"checkout.session.completed","created":1,
            "data":{"object":{"client_reference_id":"ten_1","customer":"cus_1","subscription":"sub_1",
            "metadata":{"plan":"pro"}}}}"#;
        assert_eq!(
            parse(body).unwrap().data,
            EventData::CheckoutCompleted(CheckoutCompleted {
                tenant_id: Some("ten_1".into()),
                customer_id: Some("cus_1".into()),
                subscription_id: Some("sub_1".into()),
                plan: Some("pro".into()),
            })
        );
        let body = br#"{"id":"evt_3","type":"invoice.payment_failed","created":1,
            "data":{"object":{"id":"in_1","customer":"cus_1",
            "parent":{"subscription_details":{"subscription":"sub_1"}}}}}"#;
        let EventData::PaymentFailed(invoice) = parse(body).unwrap().data else {
            panic!()
        };
        assert_eq!(invoice.subscription_id.as_deref(), Some("sub_1"));
        let body = br#"{"id":"evt_4","type":"charge.refunded","created":1,"data":{"object":{}}}"#;
        assert_eq!(parse(body).unwrap().data, EventData::Other);
        assert!(parse(b"{}").is_err());
        assert!(parse(b"not json").is_err());
    }
}
