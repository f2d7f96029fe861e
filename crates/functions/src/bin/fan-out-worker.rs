//! The fan-out worker: posts big rooms' messages a page at a time, from the fan-out queue.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> Result<(), lambda_runtime::Error> {
    chat_functions::serve_fan_out_worker()
}
