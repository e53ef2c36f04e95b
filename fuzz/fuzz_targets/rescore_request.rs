//! The body of `POST /v1/rescore` as the server decodes it, then the decoded request through
//! the serving layer (validation, routing, feature assembly, the native evaluator) on the
//! repository's marketplace model. Any body is a 4xx error or an answer with one finite
//! score per hit, and the scores-only decoding used for refusals under overload never accepts
//! a body the full decoding refuses.
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
    // The decoding for refusal under overload accepts only what the full one accepts, with
    // the same scores: a refused request never gets a 200 where it would get a 4xx.
    let scores_only = rescore_server::decode_rescore_scores(data).ok();
    let full = rescore_server::decode_rescore_body(data);
    if let Some(scores_only) = &scores_only {
        let full = full.as_ref().expect("a body decoded for refusal decodes in full");
        assert!(scores_only
            .hits
            .iter()
            .map(|h| h.score)
            .eq(full.hits.iter().map(|h| h.score)));
    }
    let request = match full {
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
