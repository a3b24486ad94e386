//! Who is calling and until when: the scope every use case runs in.
//!
//! A caller confined to a tenant sees only that tenant's executions. Everything else is
//! answered as if it did not exist (NOT_FOUND), so a confined caller cannot even learn
//! which ids other tenants use. The check lives here, in one place; the use cases ask
//! [`Caller::sees`] after reading and before answering or changing anything.

use std::time::{Duration, Instant};

use crate::domain::{DEFAULT_USER_KEY, Provenance};
use crate::error::Error;

/// The scope of one call.
#[derive(Clone, Debug, Default)]
pub struct Caller {
    /// The tenant (`user_key`) the caller is confined to; `None`: every tenant.
    pub tenant: Option<String>,
    /// When the caller stops waiting. Database work still running then is abandoned.
    pub deadline: Option<Instant>,
    /// Name of the caller's token, recorded as the actor of its changes; empty without
    /// authentication.
    pub actor: String,
}

impl Caller {
    /// A caller with no limits (every tenant, no deadline).
    pub fn unrestricted() -> Self {
        Self::default()
    }

    /// True when the caller may see executions of `user_key`.
    pub fn sees(&self, user_key: &str) -> bool {
        self.tenant
            .as_deref()
            .is_none_or(|tenant| tenant == user_key)
    }

    /// The tenant a new execution belongs to, given the one its request names (empty:
    /// none). A caller confined to a tenant creates in that tenant, and may not name
    /// another; an unconfined caller creates where it says, by default in
    /// [`DEFAULT_USER_KEY`].
    pub fn tenant_for_new(&self, named: &str) -> Result<String, Error> {
        self.tenant_to_act_in(named, "create executions")
    }

    /// The tenant a call that acts on a whole tenant (StopExecutions) acts in, given the
    /// one its request names, by the rule of [`Caller::tenant_for_new`]; `doing` says
    /// what is refused, for the error.
    pub fn tenant_to_act_in(&self, named: &str, doing: &str) -> Result<String, Error> {
        if named.is_empty() {
            Ok(self
                .tenant
                .clone()
                .unwrap_or_else(|| DEFAULT_USER_KEY.to_owned()))
        } else if self.sees(named) {
            Ok(named.to_owned())
        } else {
            Err(Error::PermissionDenied {
                reason: "OTHER_TENANT",
                message: format!(
                    "this token may only {doing} for user_key {:?}",
                    self.tenant.as_deref().unwrap_or_default()
                ),
            })
        }
    }

    /// Who the history records as making this caller's changes.
    pub fn provenance(&self) -> Provenance {
        Provenance {
            actor: self.actor.clone(),
            request_id: None,
        }
    }

    /// Time left before the deadline, if there is one; an error once it has passed.
    pub fn budget(&self) -> Result<Option<Duration>, Error> {
        match self.deadline {
            None => Ok(None),
            Some(deadline) => match deadline.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => Ok(Some(left)),
                _ => Err(Error::DeadlineExceeded),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_confined_caller_sees_only_its_tenant() {
        let confined = Caller {
            tenant: Some("acme".into()),
            ..Caller::default()
        };
        assert!(confined.sees("acme"));
        assert!(!confined.sees("globex"));
        assert_eq!(confined.tenant_for_new("acme").unwrap(), "acme");
        assert_eq!(confined.tenant_for_new("").unwrap(), "acme");
        assert!(matches!(
            confined.tenant_for_new("globex"),
            Err(Error::PermissionDenied { .. })
        ));
        assert!(Caller::unrestricted().sees("anyone"));
        assert_eq!(Caller::unrestricted().tenant_for_new("").unwrap(), "main");
        assert_eq!(Caller::unrestricted().tenant_for_new("x").unwrap(), "x");
    }

    #[test]
    fn a_passed_deadline_leaves_no_budget() {
        let late = Caller {
            deadline: Some(Instant::now() - Duration::from_millis(1)),
            ..Caller::default()
        };
        assert!(matches!(late.budget(), Err(Error::DeadlineExceeded)));
        let soon = Caller {
            deadline: Some(Instant::now() + Duration::from_secs(5)),
            ..Caller::default()
        };
        assert!(soon.budget().unwrap().is_some());
        assert_eq!(Caller::unrestricted().budget().unwrap(), None);
    }
}
