//! A local OpenID issuer for token mode on one machine (`make dev-auth`): fresh RSA and EC keys,
//! their JWKS at `/.well-known/jwks.json`, and short-lived RS256 ID tokens at `/token?user=`
//! (`make token USER=alice`). For development only: it hands a token to anyone who asks.

use chat_testing::Issuer;
use chat_testing::issuer::{CLIENT_ID, TOKEN_LIFETIME_SECS};

#[tokio::main]
async fn main() {
    let port: u16 = chat_testing::flag("--port", "9001").parse().expect("--port takes a port number");
    let issuer = Issuer::start_on(port).await;
    println!("OpenID issuer (development only) at {}", issuer.issuer());
    println!("  JWKS:   {}", issuer.jwks_url());
    println!(
        "  tokens: {}/token?user=alice   (RS256 ID tokens for audience {CLIENT_ID}, valid {TOKEN_LIFETIME_SECS} s)",
        issuer.issuer()
    );
    let _ = tokio::signal::ctrl_c().await;
}
