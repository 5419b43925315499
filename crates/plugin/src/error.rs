//! One error type; its Display is the single line the plugin prints on stderr before exiting 1.

/// Everything that can go wrong, each naming the object and the cause.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The object does not exist (or the user may not see that it does).
    #[error("{0} not found")]
    NotFound(String),
    /// The API server answered 403.
    #[error("no permission to {action} {object}: {message}")]
    Forbidden {
        /// What was attempted (get, update, ...).
        action: String,
        /// The object.
        object: String,
        /// The API server's message.
        message: String,
    },
    /// The Workspace has no desktop.
    #[error("workspace {0} is not a display Workspace (spec.compute.display.mode is none)")]
    NotDisplay(String),
    /// Somebody else holds the display lock.
    #[error("display lock of workspace {object} is held by {holder} until {until}{hint}")]
    Held {
        /// The Workspace.
        object: String,
        /// `agent:<id>` or `user:<name>`.
        holder: String,
        /// RFC 3339 expiry.
        until: String,
        /// What the user can do about it.
        hint: String,
    },
    /// The Workspace is not (yet) at the point the command needs.
    #[error("workspace {object} {cause}")]
    NotReady {
        /// The Workspace.
        object: String,
        /// Why.
        cause: String,
    },
    /// A flag or argument is wrong.
    #[error("{0}")]
    Usage(String),
    /// Any other API server or cloud failure.
    #[error("failed to {action} {object}: {message}")]
    Call {
        /// What was attempted.
        action: String,
        /// The object.
        object: String,
        /// The cause, on one line.
        message: String,
    },
}

/// Maps a kube error on `object` to the plugin's error: 404 and 403 get their own lines.
pub fn kube(action: &str, object: &str, e: kube::Error) -> Error {
    match e {
        kube::Error::Api(s) if s.is_not_found() => Error::NotFound(object.to_owned()),
        kube::Error::Api(s) if s.is_forbidden() => {
            Error::Forbidden { action: action.to_owned(), object: object.to_owned(), message: one_line(&s.message) }
        }
        other => {
            Error::Call { action: action.to_owned(), object: object.to_owned(), message: one_line(&other.to_string()) }
        }
    }
}

/// Folds a message onto one line.
pub fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16, reason: &str) -> kube::Error {
        let s: kube::core::Status = serde_json::from_value(serde_json::json!({
            "status": "Failure", "message": "workspaces.moleculesai.app \"x\" is forbidden:\n user \"bob\" cannot get",
            "reason": reason, "code": code
        }))
        .unwrap_or_default();
        kube::Error::Api(Box::new(s))
    }

    #[test]
    fn not_found_and_forbidden_are_one_line() {
        assert_eq!(kube("get", "workspace a/x", status(404, "NotFound")).to_string(), "workspace a/x not found");
        let f = kube("get", "workspace a/x", status(403, "Forbidden")).to_string();
        assert!(f.starts_with("no permission to get workspace a/x: "), "{f}");
        assert!(!f.contains('\n'), "{f}");
    }
}
