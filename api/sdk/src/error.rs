//! What can go wrong with a call.

/// An error answer from the API: its status, machine-readable code, message,
/// the field it is about, and the request id to quote to the operator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    /// The API's error code (`ResourceNotFound`, `ValidationError`, ...).
    pub code: String,
    pub message: String,
    pub field: Option<String>,
    pub request_id: Option<String>,
}

impl ApiError {
    pub(crate) fn from_response(status: u16, body: &[u8], header_request_id: Option<String>) -> ApiError {
        #[derive(serde::Deserialize)]
        struct Body {
            code: String,
            message: String,
            #[serde(default)]
            field: Option<String>,
            #[serde(default)]
            request_id: Option<String>,
        }
        match serde_json::from_slice::<Body>(body) {
            Ok(b) => ApiError {
                status,
                code: b.code,
                message: b.message,
                field: b.field,
                request_id: b.request_id.or(header_request_id),
            },
            // Not the API's error body (a proxy in between, say): keep what there is.
            Err(_) => ApiError {
                status,
                code: format!("Http{status}"),
                message: String::from_utf8_lossy(body).chars().take(500).collect(),
                field: None,
                request_id: header_request_id,
            },
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)?;
        if let Some(field) = &self.field {
            write!(f, " (field {field})")?;
        }
        if let Some(id) = &self.request_id {
            write!(f, " [request {id}]")?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API answered with an error.
    #[error("{0}")]
    Api(ApiError),
    /// No answer: the endpoint could not be reached, or the connection broke.
    #[error("cannot reach the Berth API: {0}")]
    Transport(String),
    /// An answer the SDK could not read.
    #[error("unexpected response from the Berth API: {0}")]
    Decode(String),
    /// A request the SDK could not build (a header value, a query).
    #[error("invalid request: {0}")]
    InvalidInput(String),
    /// A waiter gave up.
    #[error("timed out after {seconds}s waiting for {what}")]
    Timeout { what: String, seconds: u64 },
    /// A waiter saw the resource end in a state it was not waiting for.
    #[error("{0}")]
    Failed(String),
}

impl Error {
    /// The API error, when the API answered.
    pub fn api(&self) -> Option<&ApiError> {
        match self {
            Error::Api(e) => Some(e),
            _ => None,
        }
    }
}
