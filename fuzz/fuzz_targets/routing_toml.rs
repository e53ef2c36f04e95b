//! The routing file (`routing.toml`): parsed and validated against the golden fixture models;
//! a valid file survives the admin API's write path (serialise, parse) unchanged.
#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use rescore_serving::{Discovery, RoutingFile};

fn discovery() -> &'static Discovery {
    static DISCOVERY: OnceLock<Discovery> = OnceLock::new();
    DISCOVERY.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/golden/models");
        Discovery::scan(&dir).expect("golden fixture models")
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(routing) = toml::from_str::<RoutingFile>(text) else {
        return;
    };
    if routing.validate(discovery()).is_err() {
        return;
    }
    let written = toml::to_string_pretty(&routing).expect("a valid routing file serialises");
    let read: RoutingFile = toml::from_str(&written).expect("what was written parses");
    assert_eq!(read, routing);
});
