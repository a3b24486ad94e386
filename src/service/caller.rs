//! Who is calling and until when: the scope every use case runs in.
//!
//! A caller confined to a tenant sees only that tenant's executions. Everything else is
//! answered as if it did not exist (NOT_FOUND), so a confined caller cannot even learn
//! which ids other tenants use. The check lives here, in one place; the use cases ask
//! [`Caller::sees`] after reading and before answering or changing anything.

use std::time::{Duration, Instant};

use crate::error::Error;

/// The scope of one call.
#[derive(Clone, Debug, Default)]
pub struct Caller {
    /// The tenant (`user_key`) the caller is confined to; `None`: every tenant.
    pub tenant: Option<String>,
    /// When the caller stops waiting. Database work still running then is abandoned.
    pub deadline: Option<Instant>,
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

    /// Refuses to create an execution for a tenant the caller is not confined to.
    pub fn may_create_for(&self, user_key: &str) -> Result<(), Error> {
        if self.sees(user_key) {
            Ok(())
        } else {
            Err(Error::PermissionDenied {
                reason: "OTHER_TENANT",
                message: format!(
                    "this token may only create executions for user_key {:?}",
                    self.tenant.as_deref().unwrap_or_default()
                ),
            })
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
            deadline: None,
        };
        assert!(confined.sees("acme"));
        assert!(!confined.sees("globex"));
        assert!(confined.may_create_for("acme").is_ok());
        assert!(matches!(
            confined.may_create_for("globex"),
            Err(Error::PermissionDenied { .. })
        ));
        assert!(Caller::unrestricted().sees("anyone"));
    }

    #[test]
    fn a_passed_deadline_leaves_no_budget() {
        let late = Caller {
            tenant: None,
            deadline: Some(Instant::now() - Duration::from_millis(1)),
        };
        assert!(matches!(late.budget(), Err(Error::DeadlineExceeded)));
        let soon = Caller {
            tenant: None,
            deadline: Some(Instant::now() + Duration::from_secs(5)),
        };
        assert!(soon.budget().unwrap().is_some());
        assert_eq!(Caller::unrestricted().budget().unwrap(), None);
    }
}
