//! Never-panic properties on arbitrary input, the same as the cargo-fuzz targets in fuzz/
//! assert (scripts/fuzz runs those for longer): the file reader, the tokenizers, the text
//! normalisation and the bundle loader.

use burn::tensor::Device;
use proptest::prelude::*;
use xinsheng_core::input::{Encoding, Format, ReadOptions, decode, parse_records};
use xinsheng_core::tokenizer::{Tokenizer, TokenizerKind, normalize};
use xinsheng_core::{Bundle, Precision};

const FORMATS: [Format; 4] = [Format::Txt, Format::Tsv, Format::Csv, Format::Jsonl];
const ENCODINGS: [Encoding; 5] =
    [Encoding::Auto, Encoding::Utf8, Encoding::Gb18030, Encoding::Utf16le, Encoding::Utf16be];

/// Bytes that look like the files people have: table syntax, quotes, CJK, invisible characters,
/// stray bytes.
fn filelike() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(b"text,label\n".to_vec()),
        Just(b"label\ttext\n".to_vec()),
        Just(b"\"".to_vec()),
        Just(b",".to_vec()),
        Just(b"\t".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"{\"text\":\"".to_vec()),
        Just(b"\"label\":[\"a\"]}".to_vec()),
        Just("好评\u{200B}".as_bytes().to_vec()),
        Just(vec![0xEF, 0xBB, 0xBF]),
        Just(vec![0xFF, 0xFE]),
        any::<u8>().prop_map(|b| vec![b]),
        "[a-z0-9 ]{0,6}".prop_map(String::into_bytes),
    ];
    prop::collection::vec(piece, 0..40).prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn the_reader_never_panics(bytes in filelike(), f in 0..4usize, e in 0..5usize, mapped in any::<bool>()) {
        let label_map = if mapped { "1=positive,0=negative".parse().unwrap() } else { Default::default() };
        let options = ReadOptions { format: Some(FORMATS[f]), encoding: ENCODINGS[e], label_map, ..ReadOptions::default() };
        if let Ok(records) = parse_records("prop", &bytes, &options) {
            prop_assert!(records.records.iter().all(|r| !r.text.trim().is_empty() && r.line >= 1));
        }
        let _ = decode("prop", &bytes, ENCODINGS[e]);
    }

    #[test]
    fn normalisation_is_idempotent_and_tokens_are_bounded(text in "\\PC{0,40}|[\\u{200B}-\\u{200F}\\u{FEFF}\\u{FE0F}a-zＡ-Ｚ０-９，好不①㈱\\u{0301} ]{0,40}") {
        let once = normalize(&text);
        prop_assert_eq!(normalize(&once), once);
        for kind in [TokenizerKind::Char, TokenizerKind::Word] {
            let tokens = Tokenizer::new(kind, 16).tokenize(&text);
            prop_assert!(tokens.len() <= 16);
            prop_assert!(tokens.iter().all(|t| !t.is_empty()));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Corrupted bundles: random bytes, and a real bundle with bytes flipped or cut.
    #[test]
    fn the_bundle_loader_never_panics(noise in prop::collection::vec(any::<u8>(), 0..512), at in any::<usize>(), flip in 1..=255u8, cut in any::<bool>()) {
        let device = Device::flex();
        let _ = Bundle::from_bytes("noise", noise, &device);
        let mut bytes = shipped();
        let at = at % bytes.len();
        if cut { bytes.truncate(at) } else { bytes[at] ^= flip }
        if let Ok(bundle) = Bundle::from_bytes("damaged", bytes, &device) {
            let _ = xinsheng_core::Classifier::new(bundle, device).predict(&["好"]);
        }
    }
}

fn shipped() -> Vec<u8> {
    static BYTES: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    BYTES
        .get_or_init(|| {
            let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../models/default");
            let bundle = Bundle::load(std::path::Path::new(root), &Device::flex()).expect("shipped model");
            bundle.to_bytes(Precision::F16).unwrap()
        })
        .clone()
}
