//! Extractors whose rejections are JSON errors (`{"error": "..."}`, status 400 or 413)
//! instead of axum's plain-text ones: [`ApiPath`], [`ApiQuery`] and [`ApiJson`] wrap
//! axum's `Path`, `Query` and `Json`.

use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::Json;
use serde::de::DeserializeOwned;

use super::ApiError;

/// A rejection as an [`ApiError`]: a request too large stays 413, a server-side
/// problem stays 5xx, anything else the client sent wrong is 400.
fn rejected(status: StatusCode, what: &str, text: String) -> ApiError {
    let status = if status == StatusCode::PAYLOAD_TOO_LARGE || status.is_server_error() {
        status
    } else {
        StatusCode::BAD_REQUEST
    };
    ApiError::new(status, format!("bad {what}: {text}"))
}

/// Path parameters (`/api/v1/jobs/{id}`).
pub struct ApiPath<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(value)) => Ok(ApiPath(value)),
            Err(rejection) => Err(rejected(rejection.status(), "path", rejection.body_text())),
        }
    }
}

/// Query parameters (`?limit=10`).
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        match Query::<T>::try_from_uri(&parts.uri) {
            Ok(Query(value)) => Ok(ApiQuery(value)),
            Err(rejection) => Err(rejected(rejection.status(), "query", rejection.body_text())),
        }
    }
}

/// A JSON request body (with `Content-Type: application/json`).
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        match Json::<T>::from_request(request, state).await {
            Ok(Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => Err(rejected(rejection.status(), "body", rejection.body_text())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_mistakes_are_400_and_the_rest_keeps_its_status() {
        let error = rejected(StatusCode::UNPROCESSABLE_ENTITY, "body", "missing field".into());
        assert_eq!(error.status, StatusCode::BAD_REQUEST);
        assert_eq!(error.message, "bad body: missing field");
        let unsupported = StatusCode::UNSUPPORTED_MEDIA_TYPE;
        assert_eq!(rejected(unsupported, "body", String::new()).status, StatusCode::BAD_REQUEST);
        let large = StatusCode::PAYLOAD_TOO_LARGE;
        assert_eq!(rejected(large, "body", String::new()).status, large);
        let internal = StatusCode::INTERNAL_SERVER_ERROR;
        assert_eq!(rejected(internal, "path", String::new()).status, internal);
    }
}
