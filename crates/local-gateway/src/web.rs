//! The chat's web page (`web/`), served at `/` beside the WebSocket and @connections APIs.
//!
//! `GET /` without `?url=` redirects to `/?url=ws://{host}/{stage}` (plus `mode=token`, the
//! issuer and the user-id claim in token mode), so the page learns its WebSocket URL the same way on any static host.
//! The page's files live one folder down (`app/…`): a one-segment path is a stage to the
//! WebSocket API, and answers as API Gateway does.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, Uri, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{any, get};
use tower::ServiceExt;
use tower_http::services::{ServeDir, ServeFile};

/// What the page is told when it is opened without `?url=`.
#[derive(Clone, Debug)]
pub(crate) struct Page {
    /// The folder served.
    pub root: PathBuf,
    /// The stage of the WebSocket URL.
    pub stage: String,
    /// Token mode's issuer, whose `/token` the page may ask for a token (make dev-auth's).
    pub issuer: Option<String>,
    /// Token mode's user-id claim (`AUTH_USER_CLAIM`), which the page shows as the user's name.
    pub user_claim: Option<String>,
}

/// `GET /` and the page's files; anything else (another path, or another method on the page's
/// paths, such as a `POST /@connections/{id}` that forgot its stage) answers 403
/// `{"message":"Forbidden"}`, as API Gateway answers every path it does not serve.
pub(crate) fn router<S: Clone + Send + Sync + 'static>(page: Page) -> Router<S> {
    let forbidden = || async { crate::socket::forbidden() };
    let files =
        ServeDir::new(&page.root).call_fallback_on_method_not_allowed(true).fallback(any(forbidden).with_state(()));
    let page = Arc::new(page);
    Router::new()
        .route("/", get(move |request: Request| index(page.clone(), request)).fallback(forbidden))
        .fallback_service(files)
        .layer(axum::middleware::map_response(revalidate))
}

async fn index(page: Arc<Page>, request: Request) -> Response {
    if has_url(request.uri()) {
        return ServeFile::new(page.root.join("index.html")).oneshot(request).await.into_response();
    }
    let host = request.headers().get(header::HOST).and_then(|host| host.to_str().ok()).unwrap_or("127.0.0.1");
    let mut query = vec![("url", format!("ws://{host}/{}", page.stage))];
    if let Some(issuer) = &page.issuer {
        query.extend([("mode", "token".to_owned()), ("issuer", issuer.clone())]);
        if let Some(claim) = &page.user_claim {
            query.push(("claim", claim.clone()));
        }
    }
    let query = serde_urlencoded::to_string(&query).expect("strings encode");
    Redirect::temporary(&format!("/?{query}")).into_response()
}

fn has_url(uri: &Uri) -> bool {
    serde_urlencoded::from_str::<Vec<(String, String)>>(uri.query().unwrap_or_default())
        .is_ok_and(|query| query.iter().any(|(name, _)| name == "url"))
}

/// Files change while `make dev` runs: browsers check before reusing them.
async fn revalidate(mut response: Response) -> Response {
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// Whether `root` holds a page (`index.html`).
pub(crate) fn is_page(root: &Path) -> bool {
    root.join("index.html").is_file()
}
