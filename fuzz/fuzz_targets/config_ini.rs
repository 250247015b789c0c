//! The server's INI configuration file: any text is either refused with an error
//! naming the option, or gives a configuration that keeps the promises of
//! `Config::validate` (services API on loopback, non-zero limits).
#![no_main]

use libfuzzer_sys::fuzz_target;
use soledad_server::fuzzing::config_ini;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(config) = config_ini(text) else {
        return;
    };
    assert!(config.services_address.ip().is_loopback());
    assert!(config.concurrent_blob_writes >= 1);
    assert!(config.quota_bytes >= 1);
    assert!(!config.data_path.as_os_str().is_empty());
    assert_eq!(
        config.tls_cert_file.is_some(),
        config.tls_key_file.is_some()
    );
    assert!(config.validate().is_ok());
});
