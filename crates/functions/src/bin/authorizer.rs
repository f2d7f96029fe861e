//! The `$connect` authorizer (token mode): verifies the JWT against the issuer's JWKS.

fn main() -> Result<(), lambda_runtime::Error> {
    chat_functions::serve_authorizer()
}
