//! Route: which function serves a frame, from the routes of `template.yaml` and its route
//! selection expression, and which routes are two-way (their function's answer goes back to
//! the client).

use std::collections::{HashMap, HashSet};

use chat_core::routes::Route;
use chat_template::{RouteResponseSpec, RouteSpec, Template};
use serde_json::Value;

use crate::error::StartError;

/// The function behind a route: its logical id in the template and the binary it is built from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Function {
    /// Logical id, e.g. `SendMessageFunction` (what `sam local start-lambda` serves).
    pub logical_id: String,
    /// The cargo binary, e.g. `send-message` (what `cargo lambda watch` serves).
    pub binary: Option<String>,
}

/// The API's routes, read from the template.
#[derive(Clone, Debug)]
pub struct RouteTable {
    selection_field: Vec<String>,
    routes: HashMap<String, Function>,
    two_way: HashSet<String>,
}

impl RouteTable {
    /// Reads the WebSocket API's selection expression and every route from a template.
    pub fn from_template(template: &Template) -> Result<Self, StartError> {
        let api = template.websocket_api()?;
        let selection_field = api
            .route_selection_expression
            .strip_prefix("$request.body.")
            .filter(|path| !path.is_empty())
            .map(|path| path.split('.').map(str::to_owned).collect())
            .ok_or_else(|| StartError::Selection {
                resource: api.logical_id.clone(),
                expression: api.route_selection_expression.clone(),
            })?;
        let functions: HashMap<_, _> =
            template.functions().into_iter().map(|function| (function.logical_id.clone(), function)).collect();
        let specs = template.routes()?;
        let two_way = two_way_routes(&specs, &template.route_responses()?)?;
        let routes = specs
            .into_iter()
            .map(|route| {
                let binary = functions.get(&route.function).and_then(|function| function.binary.clone());
                (route.key, Function { logical_id: route.function, binary })
            })
            .collect();
        Ok(Self { selection_field, routes, two_way })
    }

    /// Whether a route sends its function's answer back to the client.
    pub fn is_two_way(&self, key: &str) -> bool {
        self.two_way.contains(key)
    }

    /// The function of a route key, if the API has that route.
    pub fn function(&self, key: &str) -> Option<&Function> {
        self.routes.get(key)
    }

    /// Every route key with the function it invokes.
    pub fn routes(&self) -> impl Iterator<Item = (&str, &Function)> {
        self.routes.iter().map(|(key, function)| (key.as_str(), function))
    }

    /// The route key a frame selects: its selection field when that names a custom route,
    /// otherwise `$default` (not JSON, no such field, or no matching route).
    pub fn select(&self, body: &str) -> &str {
        let selected = serde_json::from_str::<Value>(body).ok().and_then(|value| {
            let found = self.selection_field.iter().try_fold(&value, |node, field| node.get(field))?;
            found.as_str().map(str::to_owned)
        });
        match selected {
            Some(key) if !key.starts_with('$') && self.routes.contains_key(&key) => {
                self.routes.get_key_value(&key).map(|(key, _)| key.as_str()).unwrap_or(Route::Default.key())
            }
            _ => Route::Default.key(),
        }
    }
}

/// The keys of two-way routes: those with a `$default` route response and the
/// `RouteResponseSelectionExpression` `$default`, as AWS's developer guide sets one up ("Set up
/// a route response for a WebSocket API": "You can only define the $default route response").
/// Anything else is refused rather than ignored.
fn two_way_routes(routes: &[RouteSpec], responses: &[RouteResponseSpec]) -> Result<HashSet<String>, StartError> {
    let refuse = |resource: &str, problem: String| StartError::RouteResponse { resource: resource.to_owned(), problem };
    if let Some(response) = responses.iter().find(|response| response.key != "$default") {
        return Err(refuse(
            &response.logical_id,
            format!("RouteResponseKey is {:?}; WebSocket APIs define only the $default route response", response.key),
        ));
    }
    let mut two_way = HashSet::new();
    for route in routes {
        let answered = responses.iter().any(|response| response.route == route.logical_id);
        match (route.response_selection.as_deref(), answered) {
            (None, false) => {}
            (Some("$default"), true) => {
                two_way.insert(route.key.clone());
            }
            (Some("$default"), false) => {
                return Err(refuse(
                    &route.logical_id,
                    "has RouteResponseSelectionExpression but no AWS::ApiGatewayV2::RouteResponse; add one with RouteResponseKey $default, or remove the expression".into(),
                ));
            }
            (None, true) => {
                return Err(refuse(
                    &route.logical_id,
                    "has a route response but no RouteResponseSelectionExpression; set it to $default, or remove the route response".into(),
                ));
            }
            (Some(other), _) => {
                return Err(refuse(
                    &route.logical_id,
                    format!("RouteResponseSelectionExpression is {other:?}; the local gateway supports $default"),
                ));
            }
        }
    }
    Ok(two_way)
}
