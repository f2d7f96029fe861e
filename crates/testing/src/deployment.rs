//! The deployment's functions as `template.yaml` declares them: which cargo binary serves each
//! route and the authorizer. The protocol knows routes, not binaries; tests and benchmarks that
//! start binaries ask here.

use chat_core::routes::Route;
use chat_template::{Context, Template};

/// The workspace's `template.yaml`, parsed.
///
/// # Panics
/// When the template cannot be read or parsed: the tests cannot run without it.
pub fn template() -> Template {
    let path = crate::workspace_root().join("template.yaml");
    Template::load(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

/// The cargo binary of the function that serves `route` (`Metadata.BuildProperties.Binary`).
///
/// # Panics
/// When the template has no such route, or its function names no binary.
pub fn binary_of(route: Route) -> String {
    route_binary(&template(), route)
}

/// The cargo binary of the `$connect` authorizer's function (token mode).
///
/// # Panics
/// When the template puts no authorizer on `$connect` in token mode.
pub fn authorizer_binary() -> String {
    authorizer_binary_in(&template())
}

/// Every function's binary: the routes' in [`Route::ALL`]'s order, then the authorizer's.
pub fn binaries() -> Vec<String> {
    let template = template();
    Route::ALL
        .iter()
        .map(|&route| route_binary(&template, route))
        .chain([authorizer_binary_in(&template), FAN_OUT_WORKER_BINARY.to_owned()])
        .collect()
}

/// The fan-out worker's cargo binary (`FanOutWorkerFunction` in `template.yaml`).
pub const FAN_OUT_WORKER_BINARY: &str = "fan-out-worker";

fn route_binary(template: &Template, route: Route) -> String {
    let routes = template.routes().expect("the template's routes");
    let spec = routes.iter().find(|spec| spec.key == route.key()).unwrap_or_else(|| panic!("no route {}", route.key()));
    binary_named(template, &spec.function)
}

fn authorizer_binary_in(template: &Template) -> String {
    let token_mode = [("AuthIssuer", "https://issuer.example"), ("AuthAudience", "chat")]
        .map(|(name, value)| (name.to_owned(), value.to_owned()));
    let context = Context::new(template, &token_mode).expect("the template's parameters");
    let spec = template.connect_authorizer(&context).expect("the authorizer").expect("an authorizer in token mode");
    binary_named(template, &spec.function)
}

/// The binary of the function with this logical id.
fn binary_named(template: &Template, logical_id: &str) -> String {
    let function = template.functions().into_iter().find(|function| function.logical_id == logical_id);
    function.and_then(|function| function.binary).unwrap_or_else(|| panic!("{logical_id} names no binary"))
}
