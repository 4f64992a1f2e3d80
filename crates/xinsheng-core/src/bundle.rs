//! A model bundle is one burnpack file: the weights (f16 or f32) plus a JSON manifest in the
//! pack's metadata holding the config, tokenizer, vocabulary, labels and metrics. One file is
//! one fetch in the browser and one thing to copy on disk; a directory bundle is a folder with
//! `model.bpk` in it (and, for shipped models, a model card beside it).

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::store::{BurnpackStore, FloatCastAdapter, ModuleSnapshot};
use burn::tensor::{Bytes, DType, Device};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::model::{ModelConfig, SentimentModel};
use crate::tokenizer::Tokenizer;
use crate::vocab::{Bigrams, Vocab};

pub const FILE_NAME: &str = "model.bpk";
const MANIFEST_KEY: &str = "xinsheng.manifest";
/// Version 1: mean+max pooling, no calibration. Version 2 adds `config.pooling` and
/// `temperature`; bundles that use neither are still written as version 1, so older builds
/// keep reading them, and older builds refuse the others with a clear message instead of
/// misreading them.
const FORMAT_VERSION: u32 = 2;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Precision {
    /// Half the size; weights keep about three significant digits.
    #[default]
    F16,
    F32,
}

crate::schema::choice!(Precision, "precision", [F16 => "f16", F32 => "f32"]);

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Manifest {
    pub format_version: u32,
    pub config: ModelConfig,
    pub tokenizer: Tokenizer,
    /// Class names in the order of the model's outputs.
    pub labels: Vec<String>,
    pub vocab: Vocab,
    /// Token-id pairs of the bigram channel, when the model has one.
    #[serde(default)]
    pub bigrams: Option<Bigrams>,
    /// Validation metrics of the saved weights, when they were measured.
    #[serde(default)]
    pub metrics: Option<Metrics>,
    /// Free-form record of how the model was made (hyper-parameters, data, command).
    #[serde(default)]
    pub training: serde_json::Value,
    /// Calibration temperature: probabilities are `softmax(logits / temperature)` everywhere
    /// (see [`crate::calibration`]); 1 leaves the logits as trained. Bundles made before
    /// calibration existed read as 1.
    #[serde(default = "unit_temperature")]
    pub temperature: f64,
}

fn unit_temperature() -> f64 {
    1.0
}

impl Manifest {
    pub fn new(config: ModelConfig, tokenizer: Tokenizer, labels: Vec<String>, vocab: Vocab) -> Self {
        Manifest {
            format_version: FORMAT_VERSION,
            config,
            tokenizer,
            labels,
            vocab,
            bigrams: None,
            metrics: None,
            training: serde_json::Value::Null,
            temperature: 1.0,
        }
    }

    fn validate(&self) -> std::result::Result<(), String> {
        if !(1..=FORMAT_VERSION).contains(&self.format_version) {
            return Err(format!(
                "format version {} is not supported (this build reads versions 1 to {FORMAT_VERSION})",
                self.format_version
            ));
        }
        self.config.validate()?;
        if !(self.temperature.is_finite() && self.temperature > 0.0) {
            return Err(format!("temperature must be a positive number, got {}", self.temperature));
        }
        self.vocab.validate()?;
        if self.labels.len() != self.config.num_classes {
            return Err(format!("{} labels for {} model outputs", self.labels.len(), self.config.num_classes));
        }
        let bigram_rows = self.bigrams.as_ref().map_or(0, Bigrams::len);
        if bigram_rows != self.config.bigram_vocab_size {
            return Err(format!(
                "{bigram_rows} bigram entries for a bigram embedding of {}",
                self.config.bigram_vocab_size
            ));
        }
        if self.vocab.len() != self.config.vocab_size {
            return Err(format!(
                "{} vocabulary entries for an embedding of {}",
                self.vocab.len(),
                self.config.vocab_size
            ));
        }
        Ok(())
    }
}

#[derive(Clone)]
pub struct Bundle {
    pub manifest: Manifest,
    pub model: SentimentModel,
}

impl Bundle {
    pub fn to_bytes(&self, precision: Precision) -> Result<Vec<u8>> {
        let mut manifest = self.manifest.clone();
        let plain = manifest.config.pooling == crate::model::Pooling::MeanMax && manifest.temperature == 1.0;
        manifest.format_version = if plain { 1 } else { FORMAT_VERSION };
        let manifest =
            serde_json::to_string(&manifest).map_err(|e| Error::Invalid(format!("cannot encode manifest: {e}")))?;
        let dtype = match precision {
            Precision::F16 => DType::F16,
            Precision::F32 => DType::F32,
        };
        let mut store = BurnpackStore::from_bytes(None)
            .metadata(MANIFEST_KEY, manifest)
            .with_to_adapter(FloatCastAdapter::to(dtype));
        self.model.save_into(&mut store).map_err(|e| Error::Invalid(format!("cannot encode weights: {e}")))?;
        let bytes = store.get_bytes().map_err(|e| Error::Invalid(format!("cannot encode weights: {e}")))?;
        Ok(bytes.to_vec())
    }

    /// Decodes a bundle; `name` says where the bytes came from, for error messages.
    pub fn from_bytes(name: &str, bytes: Vec<u8>, device: &Device) -> Result<Bundle> {
        let bytes = Bytes::from_bytes_vec(bytes);
        let reader = burn_pack::Reader::from_bytes(bytes.clone()).map_err(|e| {
            Error::bundle(name, format!("not a readable burnpack file ({e}); it may be truncated or corrupt"))
        })?;
        let manifest = reader
            .metadata()
            .get(MANIFEST_KEY)
            .ok_or_else(|| Error::bundle(name, "burnpack file without a xinsheng manifest: not a xinsheng model"))?;
        let manifest: Manifest =
            serde_json::from_str(manifest).map_err(|e| Error::bundle(name, format!("corrupt manifest: {e}")))?;
        manifest.validate().map_err(|e| Error::bundle(name, e))?;
        // Every weight takes at least two bytes (f16): a manifest describing more weights than
        // the file can hold is refused here, before the model is allocated.
        let needed = manifest.config.min_parameters().saturating_mul(2);
        if needed > bytes.len() as u128 {
            return Err(Error::bundle(
                name,
                format!(
                    "the manifest describes at least {} weights ({} bytes) but the file has {} bytes: corrupt or \
                     not a xinsheng model",
                    manifest.config.min_parameters(),
                    needed,
                    bytes.len()
                ),
            ));
        }
        let mut model = manifest.config.init(device).with_bigrams(manifest.bigrams.clone());
        let mut store = BurnpackStore::from_bytes(Some(bytes)).with_from_adapter(FloatCastAdapter::to(DType::F32));
        model.load_from(&mut store).map_err(|e| {
            Error::bundle(
                name,
                format!("weights do not match the manifest ({e}); the file may be truncated or corrupt"),
            )
        })?;
        Ok(Bundle { manifest, model })
    }

    /// The file [`Bundle::save`] writes for `path` (`path` itself when it ends in `.bpk`, else
    /// `path/model.bpk`), after checking that it can be written there, without writing it:
    /// a directory path must be new, empty or a model directory (one holding `model.bpk`,
    /// which is replaced), never a file or a directory of other files; a `.bpk` path must not
    /// be a directory (an existing file is replaced); the nearest existing ancestor must be a
    /// writable directory (missing directories are created on saving). Drivers call it before
    /// training, so that a bad output path fails at once instead of after the last epoch;
    /// `save` calls it too.
    pub fn destination(path: &Path) -> Result<PathBuf> {
        let shown = path.display().to_string();
        let refuse = |why: String| Error::Invalid(format!("cannot write the model to {shown}: {why}"));
        let io = |at: &Path, source| Error::Io { path: at.display().to_string(), source };
        let is_file = path.extension().is_some_and(|e| e == "bpk");
        let file = if is_file { path.to_path_buf() } else { path.join(FILE_NAME) };
        match std::fs::metadata(path) {
            Ok(m) if is_file && m.is_dir() => {
                return Err(refuse("it is a directory (a path ending in .bpk names the bundle file itself)".into()));
            }
            Ok(m) if !is_file && !m.is_dir() => {
                return Err(refuse(
                    "it is a file, not a directory (give a new or empty directory, which gets model.bpk, or a \
                     path ending in .bpk)"
                        .into(),
                ));
            }
            Ok(_) if !is_file => {
                let mut entries = std::fs::read_dir(path).map_err(|e| io(path, e))?;
                if entries.next().is_some() && !file.is_file() {
                    return Err(refuse(
                        "the directory holds other files and no model.bpk (give a new or empty directory, a \
                         model directory to replace its model.bpk, or a path ending in .bpk)"
                            .into(),
                    ));
                }
            }
            _ => {}
        }
        // The nearest directory that exists must take new files.
        let mut ancestor = if is_file { path.parent().unwrap_or(Path::new("")) } else { path };
        loop {
            let at = if ancestor.as_os_str().is_empty() { Path::new(".") } else { ancestor };
            match std::fs::metadata(at) {
                Ok(m) if m.is_dir() => {
                    ancestor = at;
                    break;
                }
                Ok(_) => return Err(refuse(format!("{} is a file, not a directory", at.display()))),
                Err(e) => match at.parent().filter(|_| !ancestor.as_os_str().is_empty()) {
                    Some(parent) => ancestor = parent,
                    None => return Err(io(at, e)),
                },
            }
        }
        let probe = ancestor.join(format!(".xinsheng-write-check-{}", std::process::id()));
        match std::fs::OpenOptions::new().write(true).create_new(true).open(&probe) {
            Ok(_) => {
                let _ = std::fs::remove_file(&probe);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(refuse(format!("{} does not take new files ({e})", ancestor.display()))),
        }
        Ok(file)
    }

    /// Writes to `path`: a `.bpk` file, or a directory that will hold `model.bpk` (see
    /// [`Bundle::destination`] for which paths are refused). Missing directories are created.
    pub fn save(&self, path: &Path, precision: Precision) -> Result<PathBuf> {
        let file = Bundle::destination(path)?;
        if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| Error::Io { path: dir.display().to_string(), source })?;
        }
        let bytes = self.to_bytes(precision)?;
        // Write then rename, so an interrupted save never leaves a truncated bundle behind.
        let partial = file.with_extension("bpk.partial");
        std::fs::write(&partial, bytes).map_err(|source| Error::Io { path: partial.display().to_string(), source })?;
        std::fs::rename(&partial, &file).map_err(|source| Error::Io { path: file.display().to_string(), source })?;
        Ok(file)
    }

    /// Reads a `.bpk` file, or a directory holding `model.bpk`.
    pub fn load(path: &Path, device: &Device) -> Result<Bundle> {
        let file = if path.is_dir() { path.join(FILE_NAME) } else { path.to_path_buf() };
        let name = file.display().to_string();
        if !file.exists() {
            return Err(Error::bundle(
                &name,
                "not found (give a bundle directory containing model.bpk, or a .bpk file)",
            ));
        }
        let bytes = std::fs::read(&file).map_err(|source| Error::Io { path: name.clone(), source })?;
        Bundle::from_bytes(&name, bytes, device)
    }

    /// A copy on another device (for example the autodiff one, to fine-tune).
    pub fn to_device(&self, device: &Device) -> Bundle {
        Bundle { manifest: self.manifest.clone(), model: self.model.clone().to_device(device) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("xinsheng-bundle-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn destination_refuses_paths_a_save_would_fail_on_or_clobber() {
        let dir = scratch("destination");
        let csv = dir.join("a.csv");
        std::fs::write(&csv, "text,label\n").unwrap();
        let refused = |p: &Path| Bundle::destination(p).expect_err("refused").to_string();
        // An existing file as a directory bundle: the `File exists (os error 17)` of issue 23.
        let err = refused(&csv);
        assert!(
            err.starts_with(&format!("cannot write the model to {}: it is a file, not a directory", csv.display()))
        );
        // Below a file.
        assert!(refused(&csv.join("model")).ends_with(&format!("{} is a file, not a directory", csv.display())));
        assert!(refused(&csv.join("m.bpk")).ends_with(&format!("{} is a file, not a directory", csv.display())));
        // A directory of other files (its data, say) is not a model directory.
        assert!(refused(&dir).contains("the directory holds other files and no model.bpk"));
        // A .bpk path that is a directory.
        let odd = dir.join("odd.bpk");
        std::fs::create_dir_all(&odd).unwrap();
        assert!(refused(&odd).contains("it is a directory"));

        // New paths (missing parents included), empty and model directories, existing .bpk files.
        let fresh = dir.join("new/deeper");
        assert_eq!(Bundle::destination(&fresh).unwrap(), fresh.join(FILE_NAME));
        assert_eq!(Bundle::destination(&dir.join("x/y.bpk")).unwrap(), dir.join("x/y.bpk"));
        let empty = dir.join("empty");
        std::fs::create_dir_all(&empty).unwrap();
        assert_eq!(Bundle::destination(&empty).unwrap(), empty.join(FILE_NAME));
        let model_dir = dir.join("model");
        std::fs::create_dir_all(&model_dir).unwrap();
        std::fs::write(model_dir.join(FILE_NAME), b"old").unwrap();
        std::fs::write(model_dir.join("README.md"), b"card").unwrap();
        assert_eq!(Bundle::destination(&model_dir).unwrap(), model_dir.join(FILE_NAME));
        assert_eq!(Bundle::destination(&model_dir.join(FILE_NAME)).unwrap(), model_dir.join(FILE_NAME));
        assert!(Bundle::destination(Path::new("relative-new-dir")).is_ok());
        // The check leaves nothing behind.
        assert!(!fresh.exists() && !dir.join("x").exists());
        let left: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left.len(), 4, "{left:?}");
        #[cfg(target_os = "linux")]
        {
            // Not writable, even for root: /proc takes no new files.
            let err = refused(Path::new("/proc/xinsheng-model"));
            assert!(err.starts_with("cannot write the model to /proc/xinsheng-model: /proc does not take new files"));
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
