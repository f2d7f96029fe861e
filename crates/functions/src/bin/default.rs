//! The `default` function: the routes `chat_core::routes` maps to it.

fn main() -> Result<(), lambda_runtime::Error> {
    chat_functions::serve_routes(env!("CARGO_BIN_NAME"))
}
