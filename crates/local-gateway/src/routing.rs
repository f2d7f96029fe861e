//! Route: which function serves a frame, from the routes of `template.yaml` and its route
//! selection expression.

use std::collections::HashMap;

use chat_core::routes::Route;
use chat_template::Template;
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
        let routes = template
            .routes()?
            .into_iter()
            .map(|route| {
                let binary = functions.get(&route.function).and_then(|function| function.binary.clone());
                (route.key, Function { logical_id: route.function, binary })
            })
            .collect();
        Ok(Self { selection_field, routes })
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
