//! Tandem's native client SDK.
//!
//! Not built yet (tracked by the "Rust SDK on a sans-IO client core" issue): today this
//! crate only re-exports the wire protocol it will be built on, so that applications can
//! already decode frames and interpret close codes the way the server means them.

pub use tandem_protocol as protocol;

#[cfg(test)]
mod tests {
    #[test]
    fn close_codes_map_to_the_documented_client_reactions() {
        use crate::protocol::close::{retry_for, Retry};
        assert_eq!(retry_for(4401), Retry::RefreshToken);
        assert_eq!(retry_for(4429), Retry::After);
        assert_eq!(retry_for(4400), Retry::Never);
        assert_eq!(retry_for(1012), Retry::Backoff);
        assert_eq!(retry_for(1006), Retry::Backoff);
    }
}
