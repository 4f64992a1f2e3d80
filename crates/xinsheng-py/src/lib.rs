//! `xinsheng._native`: the core crate's classifier, trainer and fine-tuner for Python. Every
//! computation is `xinsheng-core`'s (the same tokens and probabilities as the CLI and the
//! browser); this layer converts arguments, releases the GIL while the model runs and turns the
//! core's errors into Python exceptions. The public API and its documentation are in
//! `python/xinsheng/` (`__init__.py`, `_native.pyi`).

/// The CLI's allocator for the extension's own allocations (see xinsheng-train's main.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;

use burn::tensor::Device;
use numpy::ndarray::Array2;
use numpy::{IntoPyArray, PyArray2};
use pyo3::exceptions::{PyFileNotFoundError, PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{IntoPyDict, PyDict, PyFloat, PyList};
use xinsheng_core::bundle::{Bundle, Precision};
use xinsheng_core::classifier::{Prediction, TokenWeight};
use xinsheng_core::data::{Dataset, Example};
use xinsheng_core::recipe::{self, TrainSpec};
use xinsheng_core::schema::Spelling;
use xinsheng_core::train::Event;
use xinsheng_core::{Classifier as CoreClassifier, Error};

/// The model packaged in the wheel: `models/default/model.bpk` at build time.
const DEFAULT_MODEL: &[u8] = include_bytes!("../../../models/default/model.bpk");
const DEFAULT_MODEL_NAME: &str = "xinsheng's packaged default model (models/default/model.bpk)";

fn device() -> Device {
    Device::flex()
}

/// The core's error as the Python exception a caller expects: a missing file is
/// `FileNotFoundError`, other I/O `OSError`, everything else (bad data, a corrupt bundle, bad
/// options) `ValueError`. The message is the core's, which names the file and line.
fn py_err(e: Error) -> PyErr {
    match &e {
        Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
            PyFileNotFoundError::new_err(e.to_string())
        }
        Error::Io { .. } => PyOSError::new_err(e.to_string()),
        _ => PyValueError::new_err(e.to_string()),
    }
}

/// Keyword arguments as the core's options: the names are the core's (`batch_size`), `None`
/// keeps a default, and the core lays them over its defaults and checks them
/// ([`xinsheng_core::schema::overlay`]), so no option is mapped here by hand. Values go through
/// Python's `json` (numbers, strings, booleans, `None`; a `pathlib.Path` as its string; a
/// non-finite float as the string the core reads, so `lr=float('nan')` is refused as NaN).
fn options_of(
    py: Python<'_>,
    kwargs: Option<&Bound<'_, PyDict>>,
) -> PyResult<serde_json::Map<String, serde_json::Value>> {
    let Some(kwargs) = kwargs else { return Ok(serde_json::Map::new()) };
    // JSON has no NaN or infinity: those travel as the core reads them (schema::number).
    let kwargs = kwargs.copy()?;
    for (key, value) in kwargs.clone().iter() {
        if let Some(x) = value.cast::<PyFloat>().ok().map(|x| x.value()).filter(|x| !x.is_finite()) {
            kwargs.set_item(key, x.to_string())?;
        }
    }
    let json: String = py
        .import("json")?
        .call_method(
            "dumps",
            (kwargs,),
            Some(&[("default", py.import("builtins")?.getattr("str")?)].into_py_dict(py)?),
        )?
        .extract()?;
    serde_json::from_str(&json).map_err(|e| PyValueError::new_err(format!("options: {e}")))
}

/// The core's defaults as a dict in Python's spelling (see `train_defaults`).
fn defaults_dict(py: Python<'_>, value: serde_json::Value) -> PyResult<Py<PyAny>> {
    Ok(py.import("json")?.call_method1("loads", (value.to_string(),))?.unbind())
}

fn prediction_dict<'py>(py: Python<'py>, p: &Prediction) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("label", &p.label)?;
    d.set_item("score", p.score)?;
    let probs = PyDict::new(py);
    for (label, prob) in &p.probs {
        probs.set_item(label, prob)?;
    }
    d.set_item("probs", probs)?;
    Ok(d)
}

/// The `progress` callback's view of a training event, or `None` for per-batch events.
fn event_dict<'py>(py: Python<'py>, event: &Event) -> PyResult<Option<Bound<'py, PyDict>>> {
    let d = PyDict::new(py);
    match event {
        Event::Epoch { epoch, train_loss, train_accuracy, valid, score, best } => {
            d.set_item("stage", "epoch")?;
            d.set_item("epoch", epoch)?;
            d.set_item("train_loss", train_loss)?;
            d.set_item("train_accuracy", train_accuracy)?;
            d.set_item("valid_accuracy", valid.first().map(|m| m.accuracy))?;
            d.set_item("valid_macro_f1", valid.first().map(|m| m.macro_f1))?;
            d.set_item("valid_accuracies", valid.iter().map(|m| m.accuracy).collect::<Vec<_>>())?;
            d.set_item("selection_score", score)?;
            d.set_item("best", best)?;
        }
        Event::Pretrain { epoch, batch, batches, loss } if batch == batches => {
            d.set_item("stage", "pretrain")?;
            d.set_item("epoch", epoch)?;
            d.set_item("loss", loss)?;
        }
        _ => return Ok(None),
    }
    Ok(Some(d))
}

/// Forwards epoch events to `progress` (a Python callable) and one-line reports to the
/// `xinsheng` logger, taking the GIL only for the call. The first exception `progress` raises is
/// kept and re-raised when training ends.
struct Reporter {
    progress: Option<Py<PyAny>>,
    failure: Option<PyErr>,
}

impl Reporter {
    fn event(&mut self, event: Event) {
        let Some(callback) = &self.progress else { return };
        if self.failure.is_some() {
            return;
        }
        let result = Python::attach(|py| -> PyResult<()> {
            if let Some(d) = event_dict(py, &event)? {
                callback.call1(py, (d,))?;
            }
            Ok(())
        });
        self.failure = result.err();
    }

    fn log(line: String) {
        Python::attach(|py| {
            let logged = py
                .import("logging")
                .and_then(|logging| logging.call_method1("getLogger", ("xinsheng",)))
                .and_then(|logger| logger.call_method1("info", (line,)));
            if let Err(e) = logged {
                e.write_unraisable(py, None);
            }
        });
    }

    fn finish<T>(self, value: T) -> PyResult<T> {
        match self.failure {
            Some(e) => Err(e),
            None => Ok(value),
        }
    }
}

/// A loaded model. See `python/xinsheng/_native.pyi` for the documented interface.
#[pyclass(module = "xinsheng._native")]
struct Classifier {
    /// Boxed: the model holds over-aligned (64-byte) buffers, more than Python's allocator
    /// guarantees for the object that embeds this struct.
    inner: Box<CoreClassifier>,
    /// Where the bundle came from, for `repr`.
    source: String,
}

impl Classifier {
    fn from_bundle(bundle: Bundle, source: String) -> Self {
        Classifier { inner: Box::new(CoreClassifier::new(bundle, device())), source }
    }
}

#[pymethods]
impl Classifier {
    #[staticmethod]
    #[pyo3(signature = (path=None))]
    fn load(py: Python<'_>, path: Option<PathBuf>) -> PyResult<Self> {
        // A bundle that is not there is a FileNotFoundError; the core says what to give instead.
        let missing = path.as_deref().is_some_and(|p| !p.exists());
        let (bundle, source) = py
            .detach(|| match &path {
                Some(path) => Bundle::load(path, &device()).map(|b| (b, path.display().to_string())),
                None => Bundle::from_bytes(DEFAULT_MODEL_NAME, DEFAULT_MODEL.to_vec(), &device())
                    .map(|b| (b, "default".to_string())),
            })
            .map_err(|e| if missing { PyFileNotFoundError::new_err(e.to_string()) } else { py_err(e) })?;
        Ok(Classifier::from_bundle(bundle, source))
    }

    /// A bundle from its bytes (what `save` writes); `name` names it in errors and `repr`.
    #[staticmethod]
    #[pyo3(signature = (data, name="bytes"))]
    fn from_bytes(py: Python<'_>, data: &[u8], name: &str) -> PyResult<Self> {
        let data = data.to_vec();
        let bundle = py.detach(|| Bundle::from_bytes(name, data, &device())).map_err(py_err)?;
        Ok(Classifier::from_bundle(bundle, name.to_string()))
    }

    #[getter]
    fn labels(&self) -> Vec<String> {
        self.inner.labels().to_vec()
    }

    #[getter]
    fn manifest(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let json = serde_json::to_string(&self.inner.bundle().manifest)
            .map_err(|e| PyValueError::new_err(format!("cannot describe the manifest: {e}")))?;
        Ok(py.import("json")?.call_method1("loads", (json,))?.unbind())
    }

    fn tokens(&self, text: &str) -> Vec<String> {
        self.inner.tokens(text)
    }

    fn predict<'py>(&self, py: Python<'py>, texts: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyList>> {
        let texts = strings("texts", texts)?;
        let predictions = py.detach(|| {
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            self.inner.predict(&refs)
        });
        let out = PyList::empty(py);
        for p in &predictions {
            out.append(prediction_dict(py, p)?)?;
        }
        Ok(out)
    }

    fn predict_proba<'py>(&self, py: Python<'py>, texts: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let texts = strings("texts", texts)?;
        let classes = self.inner.labels().len();
        let flat: Vec<f32> = py.detach(|| {
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            self.inner.probabilities(&refs).into_iter().flatten().collect()
        });
        let rows = flat.len() / classes.max(1);
        let array = Array2::from_shape_vec((rows, classes), flat)
            .map_err(|e| PyValueError::new_err(format!("probabilities of unexpected shape: {e}")))?;
        Ok(array.into_pyarray(py))
    }

    fn explain<'py>(&self, py: Python<'py>, text: &str) -> PyResult<Bound<'py, PyDict>> {
        let (prediction, tokens): (Prediction, Vec<TokenWeight>) = py.detach(|| self.inner.explain(text));
        let d = prediction_dict(py, &prediction)?;
        let list = PyList::empty(py);
        for t in tokens {
            let item = PyDict::new(py);
            item.set_item("token", t.token)?;
            item.set_item("weight", t.weight)?;
            if let (Some(start), Some(end)) = (t.start, t.end) {
                item.set_item("start", start)?;
                item.set_item("end", end)?;
            }
            list.append(item)?;
        }
        d.set_item("tokens", list)?;
        Ok(d)
    }

    /// `xinsheng eval --json` on texts and labels: the core's metrics ([`recipe::evaluate`]).
    fn evaluate<'py>(
        &self,
        py: Python<'py>,
        texts: &Bound<'py, PyAny>,
        labels: &Bound<'py, PyAny>,
    ) -> PyResult<Py<PyAny>> {
        let examples = paired("texts", "labels", strings("texts", texts)?, strings("labels", labels)?)?;
        let data = Dataset { lines: (1..=examples.len()).collect(), examples, skipped_empty: 0 };
        let metrics = py.detach(|| recipe::evaluate(&self.inner, "labels", &data)).map_err(py_err)?;
        let json = serde_json::to_string(&metrics)
            .map_err(|e| PyValueError::new_err(format!("cannot describe the metrics: {e}")))?;
        Ok(py.import("json")?.call_method1("loads", (json,))?.unbind())
    }

    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (texts, labels, *, valid_texts=None, valid_labels=None, add_labels=false, progress=None,
                        **options))]
    fn finetune<'py>(
        &mut self,
        py: Python<'py>,
        texts: &Bound<'py, PyAny>,
        labels: &Bound<'py, PyAny>,
        valid_texts: Option<Bound<'py, PyAny>>,
        valid_labels: Option<Bound<'py, PyAny>>,
        add_labels: bool,
        progress: Option<Py<PyAny>>,
        options: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let examples = paired("texts", "labels", strings("texts", texts)?, strings("labels", labels)?)?;
        let valid = match (valid_texts, valid_labels) {
            (Some(t), Some(l)) => {
                paired("valid_texts", "valid_labels", strings("valid_texts", &t)?, strings("valid_labels", &l)?)?
            }
            (None, None) => Vec::new(),
            _ => return Err(PyValueError::new_err("give valid_texts and valid_labels together")),
        };
        // The core's defaults and one check (the CLI's and the browser's words), before anything is prepared.
        let options = recipe::finetune_options_with(&options_of(py, options)?, Spelling::Snake).map_err(py_err)?;
        let lines = (1..=examples.len()).collect();
        let data = Dataset { examples, lines, skipped_empty: 0 };
        let mut reporter = Reporter { progress, failure: None };
        let (base, source) = (self.inner.bundle(), self.source.as_str());
        let (tuned, done) = py
            .detach(|| {
                recipe::finetune(base, source, "labels", &data, &valid, add_labels, &options, &mut |e| {
                    reporter.event(e)
                })
            })
            .map_err(py_err)?;
        let done = reporter.finish(done)?;
        // On an error (above) the classifier keeps its model.
        self.inner.replace_bundle(tuned);
        let d = PyDict::new(py);
        d.set_item("epochs_run", done.epochs_run)?;
        d.set_item("added_labels", done.added_labels)?;
        d.set_item("temperature", done.calibration.map(|c| c.temperature))?;
        d.set_item("valid_accuracy", self.inner.bundle().manifest.metrics.as_ref().map(|m| m.accuracy))?;
        Ok(d)
    }

    #[pyo3(signature = (path, precision="f16"))]
    fn save(&self, py: Python<'_>, path: PathBuf, precision: &str) -> PyResult<PathBuf> {
        let precision = precision.parse::<Precision>().map_err(py_err)?;
        py.detach(|| self.inner.bundle().save(&path, precision)).map_err(py_err)
    }

    fn __repr__(&self) -> String {
        let c = &self.inner.bundle().manifest.config;
        format!(
            "Classifier({}, {}{} hidden {}, labels {:?})",
            self.source,
            if c.bidirectional { "bi-" } else { "" },
            c.arch,
            c.hidden,
            self.inner.labels()
        )
    }
}

/// A sequence of strings (list, tuple, pandas Series …); a bare `str` is refused rather than
/// read as its characters.
fn strings(what: &str, value: &Bound<'_, PyAny>) -> PyResult<Vec<String>> {
    if value.is_instance_of::<pyo3::types::PyString>() {
        return Err(pyo3::exceptions::PyTypeError::new_err(format!(
            "{what} must be a sequence of strings, not one string: wrap it in a list"
        )));
    }
    let mut out = Vec::new();
    for (i, item) in value.try_iter()?.enumerate() {
        let item = item?;
        out.push(item.extract::<String>().map_err(|_| {
            pyo3::exceptions::PyTypeError::new_err(format!(
                "{what}[{i}] is {}, not a string",
                item.get_type().name().map_or_else(|_| "?".to_string(), |n| n.to_string())
            ))
        })?);
    }
    Ok(out)
}

/// Texts and labels of the same length as examples; a mismatch is a `ValueError`.
fn paired(texts_name: &str, labels_name: &str, texts: Vec<String>, labels: Vec<String>) -> PyResult<Vec<Example>> {
    if texts.len() != labels.len() {
        return Err(PyValueError::new_err(format!(
            "{texts_name} and {labels_name} differ in length ({} and {})",
            texts.len(),
            labels.len()
        )));
    }
    Ok(texts.into_iter().zip(labels).map(|(text, label)| Example { label, text }).collect())
}

// The arguments are Python's signature (pyo3 maps one parameter to each); the training options
// themselves arrive together in `options`.
#[allow(clippy::too_many_arguments)]
#[pyfunction]
#[pyo3(signature = (data, out=None, *, valid=None, teacher=Vec::new(), precision="f16", progress=None, **options))]
fn train(
    py: Python<'_>,
    data: Bound<'_, PyAny>,
    out: Option<PathBuf>,
    valid: Option<Bound<'_, PyAny>>,
    teacher: Vec<PathBuf>,
    precision: &str,
    progress: Option<Py<PyAny>>,
    options: Option<&Bound<'_, PyDict>>,
) -> PyResult<Classifier> {
    // One path or a list of paths, as the CLI's repeatable --data.
    let paths = |arg: &Bound<'_, PyAny>| -> PyResult<Vec<PathBuf>> {
        match arg.extract::<PathBuf>() {
            Ok(one) => Ok(vec![one]),
            Err(_) => arg.extract(),
        }
    };
    let data = paths(&data)?;
    let valid = valid.as_ref().map(paths).transpose()?.unwrap_or_default();
    let precision = precision.parse::<Precision>().map_err(py_err)?;
    // Bad options and an output path that cannot be written fail now, not after the last epoch.
    let spec = TrainSpec { data, valid, teacher, ..TrainSpec::default() }
        .with_options(&options_of(py, options)?, Spelling::Snake)
        .map_err(py_err)?;
    if let Some(out) = &out {
        Bundle::destination(out).map_err(py_err)?;
    }
    let mut reporter = Reporter { progress, failure: None };
    let bundle = py
        .detach(|| {
            let bundle = recipe::train(&spec, &device(), &mut |e| reporter.event(e), &mut Reporter::log)?;
            if let Some(out) = &out {
                bundle.save(out, precision)?;
            }
            Ok(bundle)
        })
        .map_err(py_err)?;
    let bundle = reporter.finish(bundle)?;
    let source = out.map_or_else(|| "trained".to_string(), |p| p.display().to_string());
    Ok(Classifier::from_bundle(bundle, source))
}

/// `train`'s options and their defaults, the core's ([`TrainSpec::default`]), without the file
/// lists `data`, `valid` and `teacher`.
#[pyfunction]
fn train_defaults(py: Python<'_>) -> PyResult<Py<PyAny>> {
    let mut value = xinsheng_core::schema::spelled(&TrainSpec::default(), Spelling::Snake);
    if let Some(map) = value.as_object_mut() {
        map.retain(|name, _| !["data", "valid", "teacher"].contains(&name.as_str()));
    }
    defaults_dict(py, value)
}

/// `Classifier.finetune`'s options and their defaults, the core's ([`recipe::finetune_options`]).
#[pyfunction]
fn finetune_defaults(py: Python<'_>) -> PyResult<Py<PyAny>> {
    defaults_dict(py, xinsheng_core::schema::spelled(&recipe::finetune_options(), Spelling::Snake))
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Classifier>()?;
    m.add_function(wrap_pyfunction!(train, m)?)?;
    m.add_function(wrap_pyfunction!(train_defaults, m)?)?;
    m.add_function(wrap_pyfunction!(finetune_defaults, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
