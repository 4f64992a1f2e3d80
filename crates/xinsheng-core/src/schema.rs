//! The one schema of every option and named choice, so that a new option or variant is added
//! in one place and reaches the CLI, Python and the browser.
//!
//! - **Named choices** (architectures, tokenizers, pooling, freezing, precision, file formats and
//!   encodings) implement [`Choice`] through the crate's `choice!` macro: one list of canonical
//!   names per enum, from which parsing ([`std::str::FromStr`], one error wording), printing
//!   ([`std::fmt::Display`]), serde (manifests, the browser's options) and the CLI's possible
//!   values all come. The macro fails to compile when a variant is missing from the list.
//! - **Option sets** ([`crate::train::TrainOptions`], [`crate::recipe::TrainSpec`],
//!   [`crate::input::ReadOptions`]) are serde structs with one `Default`; a driver's options
//!   (Python's keyword arguments, the browser's option object, the CLI's parsed flags) are laid
//!   over those defaults by [`overlay`], which refuses unknown names and names the option whose
//!   value is of the wrong type. No layer maps fields by hand.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// An enum of named values (see the module docs). Implemented by `choice!`.
pub trait Choice: Copy + PartialEq + Sized + 'static {
    /// What a value is called in messages: "architecture".
    const WHAT: &'static str;
    /// Every variant with its canonical name, in the order messages and `--help` list them.
    const VARIANTS: &'static [(Self, &'static str)];
    /// Other spellings accepted on input (lower-case), e.g. `gbk` for GB18030.
    const ALIASES: &'static [(&'static str, Self)] = &[];

    /// The canonical name (what `Display`, serde and the CLI write).
    fn canonical(self) -> &'static str {
        Self::VARIANTS.iter().find(|(v, _)| *v == self).map_or("?", |(_, name)| name)
    }

    /// The canonical names in order.
    fn names() -> Vec<&'static str> {
        Self::VARIANTS.iter().map(|(_, name)| *name).collect()
    }

    /// Parses a name or an alias, ignoring case and surrounding spaces.
    ///
    /// Errors: [`Error::Invalid`] `unknown architecture 'x' (expected rnn, lstm, gru)`.
    fn parse_choice(s: &str) -> Result<Self> {
        let key = s.trim().to_ascii_lowercase();
        Self::VARIANTS
            .iter()
            .map(|&(v, name)| (name, v))
            .chain(Self::ALIASES.iter().copied())
            .find(|(name, _)| *name == key)
            .map(|(_, v)| v)
            .ok_or_else(|| {
                Error::Invalid(format!("unknown {} '{}' (expected {})", Self::WHAT, s.trim(), Self::names().join(", ")))
            })
    }
}

/// Serde for an `f64` option that may be non-finite: JSON has no NaN or infinity (serde_json
/// writes them as `null`, which [`overlay`] reads as "keep the default"), so a non-finite value
/// travels as its Rust spelling, the string `"NaN"`, `"inf"` or `"-inf"`, and the core's checks
/// see the value the user gave (`--lr nan` is refused as NaN, not trained at the default).
/// Reads a number or a string that `f64::from_str` accepts. Use as
/// `#[serde(with = "crate::schema::number")]`; [`number::option`] for `Option<f64>`. Drivers
/// whose values arrive as JSON-like objects (Python's keyword arguments, the browser's option
/// object) pass non-finite numbers through [`number::spelled`].
pub mod number {
    use serde::{Deserialize, Deserializer, Serializer};

    /// A non-finite number as the string the core reads back (`NaN`, `inf`, `-inf`); finite
    /// numbers as JSON numbers.
    pub fn spelled(x: f64) -> serde_json::Value {
        serde_json::Number::from_f64(x)
            .map_or_else(|| serde_json::Value::String(x.to_string()), serde_json::Value::Number)
    }

    pub fn serialize<S: Serializer>(x: &f64, s: S) -> Result<S::Ok, S::Error> {
        if x.is_finite() { s.serialize_f64(*x) } else { s.serialize_str(&x.to_string()) }
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Given {
        Number(f64),
        Text(String),
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        match Given::deserialize(d).map_err(|_| serde::de::Error::custom("expected a number"))? {
            Given::Number(x) => Ok(x),
            Given::Text(t) => {
                t.trim().parse().map_err(|_| serde::de::Error::custom(format!("expected a number, got '{t}'")))
            }
        }
    }

    /// The same for `Option<f64>` (`null`: none).
    pub mod option {
        use serde::{Deserialize, Deserializer, Serializer};

        pub fn serialize<S: Serializer>(x: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
            match x {
                Some(x) => super::serialize(x, s),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
            #[derive(Deserialize)]
            struct Wrapped(#[serde(with = "super")] f64);
            Ok(Option::<Wrapped>::deserialize(d)?.map(|Wrapped(x)| x))
        }
    }
}

/// Implements [`Choice`], `FromStr`, `Display`, `Serialize`, `Deserialize` and an inherent
/// `name()` for a fieldless enum from its list of names:
/// `choice!(Arch, "architecture", [Rnn => "rnn", Lstm => "lstm", Gru => "gru"]);`, optionally
/// followed by `aliases ["gbk" => Gb18030]`.
macro_rules! choice {
    ($ty:ident, $what:literal, [$($variant:ident => $name:literal),+ $(,)?] $(, aliases [$($alias:literal => $target:ident),* $(,)?])?) => {
        // Every variant is listed: this match stops compiling when one is added without a name.
        const _: fn($ty) = |v| match v {
            $($ty::$variant => ()),+
        };

        impl $crate::schema::Choice for $ty {
            const WHAT: &'static str = $what;
            const VARIANTS: &'static [(Self, &'static str)] = &[$(($ty::$variant, $name)),+];
            $(const ALIASES: &'static [(&'static str, Self)] = &[$(($alias, $ty::$target)),*];)?
        }

        impl $ty {
            /// The canonical name (see [`crate::schema::Choice`]).
            pub fn name(self) -> &'static str {
                $crate::schema::Choice::canonical(self)
            }
        }

        impl ::std::str::FromStr for $ty {
            type Err = $crate::error::Error;
            fn from_str(s: &str) -> $crate::error::Result<Self> {
                <$ty as $crate::schema::Choice>::parse_choice(s)
            }
        }

        impl ::std::fmt::Display for $ty {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.name())
            }
        }

        impl ::serde::Serialize for $ty {
            fn serialize<S: ::serde::Serializer>(&self, s: S) -> ::std::result::Result<S::Ok, S::Error> {
                s.serialize_str(self.name())
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $ty {
            fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> ::std::result::Result<Self, D::Error> {
                let s = <::std::string::String as ::serde::Deserialize>::deserialize(d)?;
                <$ty as $crate::schema::Choice>::parse_choice(&s).map_err(::serde::de::Error::custom)
            }
        }
    };
}
pub(crate) use choice;

/// How a driver spells option names: Python and the CLI `batch_size`, JavaScript `batchSize`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Spelling {
    Snake,
    Camel,
}

impl Spelling {
    fn spell(self, snake: &str) -> String {
        match self {
            Spelling::Snake => snake.to_string(),
            Spelling::Camel => {
                let mut out = String::with_capacity(snake.len());
                let mut upper = false;
                for c in snake.chars() {
                    if c == '_' {
                        upper = true;
                    } else if upper {
                        out.extend(c.to_uppercase());
                        upper = false;
                    } else {
                        out.push(c);
                    }
                }
                out
            }
        }
    }

    fn unspell(self, name: &str) -> String {
        match self {
            Spelling::Snake => name.to_string(),
            Spelling::Camel => {
                let mut out = String::with_capacity(name.len() + 4);
                for c in name.chars() {
                    if c.is_ascii_uppercase() {
                        out.push('_');
                        out.push(c.to_ascii_lowercase());
                    } else {
                        out.push(c);
                    }
                }
                out
            }
        }
    }
}

/// `defaults` as a JSON object with its option names spelled for a driver (nested objects too):
/// what the browser's `info.finetuneDefaults` and Python's `finetune_defaults()` show.
pub fn spelled<T: Serialize>(defaults: &T, spelling: Spelling) -> Value {
    fn respell(value: Value, spelling: Spelling) -> Value {
        match value {
            Value::Object(map) => {
                Value::Object(map.into_iter().map(|(k, v)| (spelling.spell(&k), respell(v, spelling))).collect())
            }
            other => other,
        }
    }
    respell(serde_json::to_value(defaults).unwrap_or(Value::Null), spelling)
}

/// `defaults` with each of `overrides` laid over it; `null` keeps the default (Python's `None`,
/// JavaScript's `undefined`). Nested option sets (e.g. `distill`) take a partial object. `what`
/// names the set in messages ("fine-tuning options").
///
/// Errors: [`Error::Invalid`] for an unknown name (`unknown fine-tuning option 'epoch' (expected
/// batch_size, epochs, …)`, in alphabetical order) or a value of the wrong type (`fine-tuning option 'lr': invalid
/// type: string "x", expected f64`). Values are checked for range by the set's own `validate`.
pub fn overlay<T: Serialize + DeserializeOwned>(
    what: &str,
    defaults: &T,
    overrides: &Map<String, Value>,
    spelling: Spelling,
) -> Result<T> {
    let mut base = serde_json::to_value(defaults).map_err(|e| Error::Invalid(format!("{what}: {e}")))?;
    let Value::Object(fields) = &mut base else {
        return Err(Error::Invalid(format!("{what}: not a set of named options")));
    };
    let names = |fields: &Map<String, Value>| fields.keys().map(|k| spelling.spell(k)).collect::<Vec<_>>().join(", ");
    for (name, value) in overrides {
        let key = spelling.unspell(name);
        if !fields.contains_key(&key) {
            let singular = what.strip_suffix('s').unwrap_or(what);
            return Err(Error::Invalid(format!("unknown {singular} '{name}' (expected {})", names(fields))));
        }
        merge(fields.get_mut(&key).expect("checked above"), value);
    }
    serde_json::from_value(base.clone()).map_err(|e| {
        // serde_json does not say which field failed: find the override that does.
        let culprit = overrides.iter().find(|(name, value)| {
            let mut one = serde_json::to_value(defaults).unwrap_or(Value::Null);
            if let Some(slot) = one.as_object_mut().and_then(|f| f.get_mut(&spelling.unspell(name))) {
                merge(slot, value);
            }
            serde_json::from_value::<T>(one).is_err()
        });
        let singular = what.strip_suffix('s').unwrap_or(what);
        match culprit {
            Some((name, _)) => Error::Invalid(format!("{singular} '{name}': {e}")),
            None => Error::Invalid(format!("{what}: {e}")),
        }
    })
}

fn merge(slot: &mut Value, value: &Value) {
    match (slot, value) {
        (_, Value::Null) => {}
        (Value::Object(into), Value::Object(from)) => {
            for (k, v) in from {
                match into.get_mut(k) {
                    Some(inner) => merge(inner, v),
                    None => {
                        into.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (slot, value) => *slot = value.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum Colour {
        Red,
        DarkBlue,
    }
    choice!(Colour, "colour", [Red => "red", DarkBlue => "dark-blue"], aliases ["navy" => DarkBlue]);

    #[derive(Debug, PartialEq, Serialize, serde::Deserialize)]
    struct Options {
        batch_size: usize,
        lr: f64,
        colour: Colour,
        inner: Inner,
    }

    #[derive(Debug, PartialEq, Serialize, serde::Deserialize)]
    struct Inner {
        weight: f64,
        temperature: f64,
    }

    fn defaults() -> Options {
        Options { batch_size: 16, lr: 0.5, colour: Colour::Red, inner: Inner { weight: 0.5, temperature: 1.0 } }
    }

    fn object(json: &str) -> Map<String, Value> {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn choices_parse_print_and_serialize_by_their_one_list_of_names() {
        assert_eq!(" Dark-Blue ".parse::<Colour>().unwrap(), Colour::DarkBlue);
        assert_eq!("navy".parse::<Colour>().unwrap(), Colour::DarkBlue);
        assert_eq!(Colour::DarkBlue.to_string(), "dark-blue");
        assert_eq!(serde_json::to_string(&Colour::DarkBlue).unwrap(), "\"dark-blue\"");
        assert_eq!(serde_json::from_str::<Colour>("\"red\"").unwrap(), Colour::Red);
        assert_eq!(Colour::names(), ["red", "dark-blue"]);
        let err = "green".parse::<Colour>().unwrap_err().to_string();
        assert_eq!(err, "unknown colour 'green' (expected red, dark-blue)");
        let err = serde_json::from_str::<Colour>("\"green\"").unwrap_err().to_string();
        assert!(err.contains("unknown colour 'green' (expected red, dark-blue)"), "{err}");
    }

    #[test]
    fn overlay_keeps_defaults_for_absent_and_null_options_and_merges_nested_ones() {
        let out = overlay(
            "options",
            &defaults(),
            &object(r#"{"batchSize": 4, "lr": null, "inner": {"weight": 1}}"#),
            Spelling::Camel,
        )
        .unwrap();
        assert_eq!(
            out,
            Options { batch_size: 4, lr: 0.5, colour: Colour::Red, inner: Inner { weight: 1.0, temperature: 1.0 } }
        );
        let out = overlay("options", &defaults(), &object(r#"{"batch_size": 2, "colour": "navy"}"#), Spelling::Snake)
            .unwrap();
        assert_eq!((out.batch_size, out.colour), (2, Colour::DarkBlue));
    }

    #[test]
    fn non_finite_numbers_reach_the_checks_instead_of_reading_as_no_value() {
        use crate::recipe::TrainSpec;
        // The spelling every driver sends for a non-finite number, and what the core reads back.
        assert_eq!(number::spelled(f64::NAN), Value::String("NaN".into()));
        assert_eq!(number::spelled(f64::NEG_INFINITY), Value::String("-inf".into()));
        assert_eq!(number::spelled(0.5), serde_json::json!(0.5));
        let spec = TrainSpec { lr: f64::INFINITY, ..TrainSpec::default() };
        let back: TrainSpec = serde_json::from_value(serde_json::to_value(&spec).unwrap()).unwrap();
        assert_eq!(back.lr, f64::INFINITY);
        let with_teacher =
            || TrainSpec { data: vec!["d.tsv".into()], teacher: vec!["t.tsv".into()], ..TrainSpec::default() };
        let refused = |json: &str| with_teacher().with_options(&object(json), Spelling::Snake).unwrap_err().to_string();
        assert!(
            refused(r#"{"lr": "NaN"}"#).ends_with("must be a finite number above 0, got NaN"),
            "{}",
            refused(r#"{"lr": "NaN"}"#)
        );
        assert!(
            refused(r#"{"distill_weight": "inf"}"#).contains("got inf"),
            "{}",
            refused(r#"{"distill_weight": "inf"}"#)
        );
        let err = refused(r#"{"lr": "fast"}"#);
        assert!(err == "training option 'lr': expected a number, got 'fast'", "{err}");
        // null still keeps the default, and a number given as a number is read as one.
        let spec = TrainSpec { data: vec!["d.tsv".into()], ..TrainSpec::default() }
            .with_options(&object(r#"{"lr": null, "dropout": 0.25}"#), Spelling::Snake)
            .unwrap();
        assert_eq!((spec.lr, spec.dropout), (TrainSpec::default().lr, 0.25));
    }

    #[test]
    fn overlay_names_unknown_options_and_the_option_of_the_wrong_type() {
        let err = overlay("options", &defaults(), &object(r#"{"batch": 4}"#), Spelling::Camel).unwrap_err().to_string();
        assert_eq!(err, "unknown option 'batch' (expected batchSize, colour, inner, lr)");
        let err = overlay("options", &defaults(), &object(r#"{"lr": 1, "batch_size": "x"}"#), Spelling::Snake)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("option 'batch_size': invalid type: string \"x\""), "{err}");
        let err = overlay("options", &defaults(), &object(r#"{"colour": "green"}"#), Spelling::Snake)
            .unwrap_err()
            .to_string();
        assert!(err.contains("option 'colour': unknown colour 'green'"), "{err}");
    }

    #[test]
    fn spelled_shows_the_defaults_in_the_drivers_spelling() {
        let shown = spelled(&defaults(), Spelling::Camel);
        assert_eq!(shown["batchSize"], 16);
        assert_eq!(shown["inner"]["temperature"], 1.0);
        assert_eq!(spelled(&defaults(), Spelling::Snake)["batch_size"], 16);
    }
}
