//! Any bytes as any format and encoding through the one reader: records or an error, never a
//! panic; every record has non-blank text and a line inside the input.
#![no_main]
use libfuzzer_sys::fuzz_target;
use xinsheng_core::input::{Encoding, Format, ReadOptions, parse_records};

fuzz_target!(|data: &[u8]| {
    let Some((&choice, bytes)) = data.split_first() else { return };
    let format = [Format::Txt, Format::Tsv, Format::Csv, Format::Jsonl][usize::from(choice & 3)];
    let encoding =
        [Encoding::Auto, Encoding::Utf8, Encoding::Gb18030, Encoding::Utf16le, Encoding::Utf16be][usize::from(choice >> 2) % 5];
    let label_map = if choice & 0x80 != 0 { "1=positive,0=negative".parse().unwrap() } else { Default::default() };
    let options = ReadOptions { format: Some(format), encoding, label_map, ..ReadOptions::default() };
    if let Ok(records) = parse_records("fuzz", bytes, &options) {
        let lines = bytes.iter().filter(|&&b| b == b'\n').count() + 1;
        for r in &records.records {
            assert!(!r.text.trim().is_empty());
            assert!(r.line >= 1 && r.line <= lines.max(1) + 1, "line {} of {lines}", r.line);
        }
    }
});
