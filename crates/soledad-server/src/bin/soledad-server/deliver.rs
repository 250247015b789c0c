//! `soledad-server deliver UUID [ID] < message`: seal stdin to the user's
//! incoming key and deliver it through the services API with a service token
//! read from the services tokens file.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use anyhow::Context as _;
use soledad_server::Config;
use soledad_server::deliver::Deliverer;

/// The token of service `name` in the services tokens file (`name:token` lines).
fn service_token(config: &Config, name: &str) -> anyhow::Result<String> {
    let path = config.services_tokens_path();
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    text.lines()
        .filter_map(|line| line.trim().split_once(':'))
        .find(|(service, _)| *service == name)
        .map(|(_, token)| token.trim().to_owned())
        .with_context(|| format!("no token for service {name:?} in {}", path.display()))
}

/// The services API URL of a local server (a wildcard address means loopback).
fn services_url(config: &Config) -> String {
    let mut address: SocketAddr = config.services_address;
    if address.ip().is_unspecified() {
        address.set_ip(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    format!("http://{address}")
}

pub(crate) fn run(
    config: &Config,
    uuid: &str,
    id: Option<&str>,
    service: &str,
    url: Option<&str>,
) -> anyhow::Result<()> {
    // reqwest is built without a default TLS provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let token = service_token(config, service)?;
    let url = url.map_or_else(|| services_url(config), str::to_owned);
    let deliverer = Deliverer::new(&url, service, &token)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let receipt = runtime.block_on(deliverer.deliver(uuid, id, std::io::stdin()))?;
    println!("{}", receipt.id);
    Ok(())
}
