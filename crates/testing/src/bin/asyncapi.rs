//! Prints the protocol's AsyncAPI document, generated from the Rust types (`make asyncapi`
//! writes it to `docs/asyncapi.yaml`).

fn main() {
    print!("{}", chat_testing::contract::generated_yaml());
}
