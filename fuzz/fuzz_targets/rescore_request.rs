//! The body of `POST /v1/rescore` as the server decodes it, then the decoded request through
//! the serving layer (validation, routing, feature assembly, the native evaluator) on the
//! repository's marketplace model. Any body is a 4xx error or an answer with one finite
//! score per hit.
#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use rescore_serving::{Discovery, Registry, Rescorer, ServingConfig};

struct Env {
    runtime: tokio::runtime::Runtime,
    rescorer: Rescorer,
}

fn env() -> &'static Env {
    static ENV: OnceLock<Env> = OnceLock::new();
    ENV.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime");
        let _entered = runtime.enter();
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models");
        let discovery = Discovery::scan(&dir).expect("models/");
        let config = ServingConfig {
            scoring_threads: 1,
            ..ServingConfig::default()
        };
        let rescorer = Rescorer::new(config, &discovery).expect("config");
        let registry = Registry::load(&discovery, rescorer.config());
        rescorer.set_loaded(registry, None);
        assert!(rescorer.is_ready());
        Env { runtime, rescorer }
    })
}

// Loading the model (with its self-check) takes seconds under the sanitizer: done before the
// first input, outside libFuzzer's per-input timeout.
fuzz_target!(init: { env(); }, |data: &[u8]| {
    let env = env();
    let request = match rescore_server::decode_rescore_body(data) {
        Ok(request) => request,
        Err(error) => {
            let status = error.code().http_status();
            assert!((400..500).contains(&status), "{error:?}");
            return;
        }
    };
    let hits = request.hits.len();
    match env.runtime.block_on(env.rescorer.rescore(request)) {
        Ok(response) => {
            assert_eq!(response.scores.len(), hits);
            assert!(response.scores.iter().all(|s| s.is_finite()));
        }
        Err(error) => {
            let status = error.code().http_status();
            assert!((400..500).contains(&status), "{error:?}");
        }
    }
});
