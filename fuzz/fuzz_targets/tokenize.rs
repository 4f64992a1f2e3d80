//! Any text through both tokenizers: at most max_len tokens, none empty, and normalisation
//! idempotent.
#![no_main]
use libfuzzer_sys::fuzz_target;
use xinsheng_core::tokenizer::{Tokenizer, TokenizerKind, normalize};

fuzz_target!(|text: &str| {
    let once = normalize(text);
    assert_eq!(normalize(&once), once);
    for kind in [TokenizerKind::Char, TokenizerKind::Word] {
        let tokens = Tokenizer::new(kind, 32).tokenize(text);
        assert!(tokens.len() <= 32);
        assert!(tokens.iter().all(|t| !t.is_empty()));
    }
});
