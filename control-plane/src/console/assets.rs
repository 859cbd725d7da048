//! The console's stylesheet and script, compiled into the binary: the
//! console needs no build step and no files beside the server.

use axum::extract::Path;
use axum::http::header;
use axum::response::{IntoResponse, Response};

pub const CSS_PATH: &str = "/console/assets/console.css";
pub const JS_PATH: &str = "/console/assets/console.js";

const CSS: &str = include_str!("static/console.css");
const JS: &str = include_str!("static/console.js");

pub async fn serve(Path(file): Path<String>) -> Response {
    let (body, content_type) = match file.as_str() {
        "console.css" => (CSS, "text/css; charset=utf-8"),
        "console.js" => (JS, "text/javascript; charset=utf-8"),
        _ => return super::ConsoleError(crate::app::AppError::not_found("console asset", file)).into_response(),
    };
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "public, max-age=300")], body).into_response()
}
