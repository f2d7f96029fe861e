//! The `send-message` function: the routes `chat_core::routes` maps to it, on mimalloc (fan-out
//! allocates a frame per post).

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> Result<(), lambda_runtime::Error> {
    chat_functions::serve_routes(env!("CARGO_BIN_NAME"))
}
