//! The one error type of the simulator's handlers and how it becomes an HTTP answer.
//!
//! Real PVE puts the message in the HTTP reason phrase *and* (since pve-http-server 5.2)
//! in the JSON body as `message` with a trailing newline; a 400 from parameter
//! verification carries an `errors` map. The HTTP layer in `server` turns an
//! [`ApiError`] into exactly that shape.

use std::collections::BTreeMap;

use http::StatusCode;

/// Request parameters after decoding (query string, form body or JSON body).
///
/// PVE validates everything as strings on the wire: a JSON `true` is normalised to
/// `"1"` before it reaches a handler.
pub type Params = BTreeMap<String, String>;

/// An error answer of the simulated API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status code (400, 401, 403, 500, 501, 596 …).
    pub status: StatusCode,
    /// The message, without trailing newline: reason phrase and JSON `message`.
    pub message: String,
    /// Per-parameter messages of a 400 `Parameter verification failed.`.
    pub errors: Option<BTreeMap<String, String>>,
}

impl ApiError {
    /// A handler `die`: HTTP 500 with the given text (the normal PVE error code).
    pub fn internal(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: message.into(),
            errors: None,
        }
    }

    /// A `raise_param_exc` for one parameter: 400 `Parameter verification failed.`.
    pub fn param(name: impl Into<String>, message: impl Into<String>) -> Self {
        let mut errors = BTreeMap::new();
        errors.insert(name.into(), message.into());
        Self::params(errors)
    }

    /// A `raise_param_exc` for several parameters.
    pub fn params(errors: BTreeMap<String, String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: "Parameter verification failed.".to_owned(),
            errors: Some(errors),
        }
    }

    /// Any status with a plain message (401, 403, 501, 596 …).
    pub fn status(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            errors: None,
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status.as_u16(), self.message)
    }
}

impl std::error::Error for ApiError {}

/// Result of a simulated API handler.
pub type ApiResult<T> = Result<T, ApiError>;
