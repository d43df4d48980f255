//! The shapes of Corridor's identifiers.
//!
//! Every id Corridor hands out is a prefix and a UUID (`pay_0192…`; jobs are a bare UUID).
//! A string of any other shape names nothing, so the API answers it with a 404 without asking
//! the database — which also keeps bytes a database refuses (a NUL on PostgreSQL) away from it.

/// What an id names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdKind {
    /// `pay_…`
    Payment,
    /// `quote_…`
    Quote,
    /// `mer_…`
    Merchant,
    /// `we_…`
    Endpoint,
    /// `whd_…`
    Delivery,
    /// `recon_…`
    Reconciliation,
    /// A bare UUID, or the fixed name of a recurring job (`alerts-sweep`).
    Job,
}

impl IdKind {
    /// The id's prefix, underscore included (empty for jobs).
    pub fn prefix(self) -> &'static str {
        match self {
            IdKind::Payment => "pay_",
            IdKind::Quote => "quote_",
            IdKind::Merchant => "mer_",
            IdKind::Endpoint => "we_",
            IdKind::Delivery => "whd_",
            IdKind::Reconciliation => "recon_",
            IdKind::Job => "",
        }
    }

    /// Whether `id` has this kind's shape: the prefix, then a UUID (hyphenated or not).
    pub fn matches(self, id: &str) -> bool {
        if self == IdKind::Job && is_recurring_name(id) {
            return true;
        }
        id.strip_prefix(self.prefix())
            .filter(|rest| rest.len() == 32 || rest.len() == 36)
            .is_some_and(|rest| uuid::Uuid::try_parse(rest).is_ok())
    }
}

/// A recurring job's fixed name: lowercase words joined by hyphens.
fn is_recurring_name(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_lowercase() || b == b'-')
        && !id.starts_with('-')
}

#[cfg(test)]
mod tests {
    use super::IdKind::*;

    #[test]
    fn ids_of_the_right_shape_match_and_nothing_else_does() {
        let uuid = uuid::Uuid::now_v7();
        assert!(Payment.matches(&format!("pay_{uuid}")));
        assert!(Payment.matches(&format!("pay_{}", uuid.simple())));
        assert!(Job.matches(&uuid.to_string()));
        assert!(Endpoint.matches(&format!("we_{uuid}")));
        for bad in [
            format!("quote_{uuid}"),
            format!("pay_{uuid}\0"),
            format!("pay_\0{}", &uuid.to_string()[1..]),
            format!("pay_{{{uuid}}}"),
            format!("pay_urn:uuid:{uuid}"),
            "pay_".to_owned(),
            "pay_nothing".to_owned(),
            String::new(),
        ] {
            assert!(!Payment.matches(&bad), "{bad:?} passed as a payment id");
        }
        assert!(!Job.matches(&format!("pay_{uuid}")));
        assert!(Job.matches("alerts-sweep"));
        assert!(!Job.matches("alerts\0sweep"));
        assert!(!Job.matches("Alerts"));
    }
}
