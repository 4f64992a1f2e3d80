//! xinsheng in the browser: the core crate's classifier behind wasm-bindgen, on WebGPU or the
//! Flex CPU backend. `web/xinsheng.js` wraps this in the public `Classifier` API.
//!
//! Every tensor read here is asynchronous: on WebGPU a synchronous read panics.

use std::cell::RefCell;
use std::collections::HashMap;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::tensor::{Device, Tensor, TensorData};
use serde::Serialize;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use xinsheng_core::classifier::TokenWeight;
use xinsheng_core::data::Dataset;
use xinsheng_core::model::{inference_batches, scatter_rows};
use xinsheng_core::recipe::{Finetune, finetune_options, finetune_options_with};
use xinsheng_core::schema::{Spelling, overlay, spelled};
use xinsheng_core::train::Event;
use xinsheng_core::{Bundle, Classifier, Example, Precision, Prediction, SentimentModel, TokenizerKind};

thread_local! {
    /// The page's WebGPU device. burn registers one runtime per page: a second
    /// initialisation fails, so the first device is kept and shared by every model.
    static WEBGPU: RefCell<Option<Device>> = const { RefCell::new(None) };
}

unsafe extern "C" {
    /// The static constructors (burn's and CubeCL's `inventory` registrations), synthesised by
    /// wasm-ld.
    fn __wasm_call_ctors();
}

#[wasm_bindgen(start)]
pub fn start() {
    // Run the constructors once, here. Without an explicit call, wasm-ld treats the module as a
    // "command" and wraps *every* export in a call to them: each call from JavaScript (each
    // string passed, each allocation) re-ran all registrations, which was about half of
    // batched classify's time and most of a single review's.
    // SAFETY: wasm-bindgen calls the start function once, before any other export.
    unsafe { __wasm_call_ctors() };
    console_error_panic_hook::set_once();
}

/// Initialises WebGPU for this page (once; later calls reuse the device).
#[wasm_bindgen(js_name = initWebgpu)]
pub async fn init_webgpu() -> Result<(), JsError> {
    if WEBGPU.with(|d| d.borrow().is_some()) {
        return Ok(());
    }
    let device = Device::wgpu_options()
        .init_async()
        .await
        .map_err(|e| JsError::new(&format!("WebGPU initialisation failed: {e}")))?;
    web_sys::console::info_1(&"xinsheng: WebGPU initialised; models on this page share the device".into());
    WEBGPU.with(|d| *d.borrow_mut() = Some(device));
    Ok(())
}

/// Loads jieba's dictionary (`jieba-dict.txt`, fetched by xinsheng.js when a word model
/// needs it; character models never do).
#[wasm_bindgen(js_name = loadWordDictionary)]
pub fn load_word_dictionary(text: &[u8]) -> Result<(), JsError> {
    xinsheng_core::tokenizer::load_word_dictionary(text).map_err(|e| JsError::new(&e))
}

/// Reads a dropped or opened file the way the CLI does (`xinsheng_core::input::parse_records`).
/// `options` (all optional): `{format: "txt"|"tsv"|"csv"|"jsonl"` (default: from `name`'s
/// extension), `encoding: "auto"|"utf-8"|"gb18030"|"utf-16le"|"utf-16be"`, `textColumn`,
/// `labelColumn`, `labelMap: "1=positive,0=negative"}`. Returns
/// `{format, encoding, labelled, records: [{line, text, label?}], skippedBlank}`; errors name
/// the file and line, and carry the core's stable `code` and its `values` (see
/// [`coded_error`]) so that the page can word them in its own language.
#[wasm_bindgen(js_name = parseFile)]
pub fn parse_file(name: &str, bytes: &[u8], options: JsValue) -> Result<JsValue, JsValue> {
    use xinsheng_core::input::{ReadOptions, parse_records};
    // The core's schema, in JavaScript's spelling (`textColumn`): unknown names and values of
    // the wrong type are refused with the core's words.
    let options = options_object(options)
        .and_then(|o| overlay("file options", &ReadOptions::default(), &o, Spelling::Camel).map_err(|e| e.to_string()))
        .map_err(|e| {
            let error = js_sys::Error::new(&format!("file options: {e}"));
            set_code(&error, "bad-file-options", &std::collections::BTreeMap::from([("detail", e.to_string())]));
            JsValue::from(error)
        })?;
    let records = parse_records(name, bytes, &options).map_err(|e| coded_error(&e))?;
    Ok(to_js(&records)?)
}

/// A JavaScript options object (`undefined` and `null`: no options) as the core's option map.
fn options_object(options: JsValue) -> Result<serde_json::Map<String, serde_json::Value>, String> {
    if options.is_undefined() || options.is_null() {
        return Ok(serde_json::Map::new());
    }
    match json_of(&options)? {
        serde_json::Value::Object(map) => Ok(map),
        other => Err(format!("expected an object of named options, got {other}")),
    }
}

/// A JavaScript value as JSON, keeping what `JSON.stringify` would lose: a non-finite number
/// travels as the string the core reads (`NaN`, `inf`; see `schema::number`), so `{lr: NaN}` is
/// refused as NaN instead of reading as "no value, keep the default".
fn json_of(value: &JsValue) -> Result<serde_json::Value, String> {
    use serde_json::Value;
    Ok(if value.is_undefined() || value.is_null() {
        Value::Null
    } else if let Some(b) = value.as_bool() {
        Value::Bool(b)
    } else if let Some(x) = value.as_f64() {
        // JavaScript has one number type: an integral value is an integer (`epochs: 3`).
        const SAFE: f64 = 9_007_199_254_740_991.0;
        if x.fract() == 0.0 && x.abs() <= SAFE {
            Value::from(x as i64)
        } else {
            xinsheng_core::schema::number::spelled(x)
        }
    } else if let Some(s) = value.as_string() {
        Value::String(s)
    } else if js_sys::Array::is_array(value) {
        Value::Array(js_sys::Array::from(value).iter().map(|v| json_of(&v)).collect::<Result<_, _>>()?)
    } else if value.is_object() && !value.is_function() {
        let mut map = serde_json::Map::new();
        for entry in js_sys::Object::entries(value.unchecked_ref()).iter() {
            let entry = js_sys::Array::from(&entry);
            let key = entry.get(0).as_string().unwrap_or_default();
            let value = json_of(&entry.get(1)).map_err(|e| format!("{key}: {e}"))?;
            map.insert(key, value);
        }
        Value::Object(map)
    } else {
        return Err(format!(
            "expected numbers, strings, booleans, arrays or objects, got {}",
            value.js_typeof().as_string().unwrap_or_default()
        ));
    })
}

/// The core's error as a JS `Error`: `message` is the core's (English) message; when the error
/// has a [`xinsheng_core::error::Code`], `code` is its stable name and `values` its values
/// (`{file, line?, …}`, all strings), which the page words from its string tables.
fn coded_error(e: &xinsheng_core::Error) -> JsValue {
    let error = js_sys::Error::new(&e.to_string());
    if let Some(code) = e.code() {
        set_code(&error, code.code, &code.values);
    }
    error.into()
}

fn set_code(error: &js_sys::Error, code: &str, values: &std::collections::BTreeMap<&'static str, String>) {
    // Setting a property on a fresh Error object cannot fail.
    let _ = js_sys::Reflect::set(error, &"code".into(), &code.into());
    if let Ok(values) = to_js(values) {
        let _ = js_sys::Reflect::set(error, &"values".into(), &values);
    }
}

fn device_for(backend: &str) -> Result<Device, JsError> {
    match backend {
        "cpu" => Ok(Device::flex()),
        "webgpu" => WEBGPU
            .with(|d| d.borrow().clone())
            .ok_or_else(|| JsError::new("WebGPU is not initialised: call initWebgpu() first")),
        other => Err(JsError::new(&format!("unknown backend '{other}' (expected webgpu or cpu)"))),
    }
}

fn js_error(e: impl std::fmt::Display) -> JsError {
    JsError::new(&e.to_string())
}

/// Plain JS objects (not `Map`s) for maps such as `probs`.
fn to_js<T: Serialize + ?Sized>(value: &T) -> Result<JsValue, JsError> {
    value.serialize(&serde_wasm_bindgen::Serializer::json_compatible()).map_err(js_error)
}

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_name = setTimeout)]
    fn set_timeout(handler: &js_sys::Function, ms: i32) -> JsValue;
}

/// Lets the browser handle input and paint before the next training step.
async fn next_task() {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        set_timeout(&resolve, 0);
    });
    let _ = JsFuture::from(promise).await;
}

/// A loaded model on one backend.
#[wasm_bindgen]
pub struct Engine {
    classifier: Classifier,
    backend: String,
    /// Where the bundle came from (`load`'s `name`), recorded by a fine-tune.
    source: String,
}

#[derive(Serialize)]
struct Explanation {
    prediction: Prediction,
    tokens: Vec<TokenWeight>,
}

/// One report per training step, passed to `onProgress`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Progress {
    epoch: usize,
    epochs: usize,
    step: usize,
    steps: usize,
    loss: f64,
    accuracy: f64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FineTuneSummary {
    epochs: usize,
    steps: usize,
    loss: f64,
    accuracy: f64,
    labels: Vec<String>,
}

#[wasm_bindgen]
impl Engine {
    /// Decodes bundle bytes onto `backend` ("webgpu" after `initWebgpu`, or "cpu"); `name`
    /// says where the bytes came from, for error messages.
    pub fn load(name: &str, bytes: Vec<u8>, backend: &str) -> Result<Engine, JsError> {
        let device = device_for(backend)?;
        let bundle = Bundle::from_bytes(name, bytes, &device).map_err(js_error)?;
        Ok(Engine {
            classifier: Classifier::new(bundle, device),
            backend: backend.to_string(),
            source: name.to_string(),
        })
    }

    #[wasm_bindgen(getter)]
    pub fn backend(&self) -> String {
        self.backend.clone()
    }

    /// True for a word model while jieba's dictionary is not loaded yet.
    #[wasm_bindgen(getter, js_name = needsWordDictionary)]
    pub fn needs_word_dictionary(&self) -> bool {
        self.classifier.manifest().tokenizer.kind == TokenizerKind::Word
            && !xinsheng_core::tokenizer::word_dictionary_available()
    }

    fn check_tokenizer(&self) -> Result<(), JsError> {
        if self.needs_word_dictionary() {
            return Err(JsError::new("this model splits words with jieba: call loadWordDictionary first"));
        }
        Ok(())
    }

    #[wasm_bindgen(getter)]
    pub fn labels(&self) -> Vec<String> {
        self.classifier.labels().to_vec()
    }

    /// The bundle's manifest (config, tokenizer, labels, metrics, training) without the vocabulary.
    #[wasm_bindgen(getter)]
    pub fn info(&self) -> Result<JsValue, JsError> {
        let manifest = &self.classifier.manifest();
        #[derive(Serialize)]
        struct Info<'a> {
            config: &'a xinsheng_core::ModelConfig,
            tokenizer: &'a xinsheng_core::Tokenizer,
            labels: &'a [String],
            vocab_size: usize,
            metrics: &'a Option<xinsheng_core::Metrics>,
            /// `fineTune`'s options and defaults (the core's, as `xinsheng finetune` and Python
            /// use), in JavaScript's spelling.
            finetune_defaults: serde_json::Value,
        }
        to_js(&Info {
            config: &manifest.config,
            tokenizer: &manifest.tokenizer,
            labels: &manifest.labels,
            vocab_size: manifest.vocab.len(),
            metrics: &manifest.metrics,
            finetune_defaults: spelled(&finetune_options(), Spelling::Camel),
        })
    }

    /// `[{label, score, probs}]` for each text, in order.
    pub async fn classify(&self, texts: Vec<String>) -> Result<JsValue, JsError> {
        self.check_tokenizer()?;
        let encoded: Vec<Vec<usize>> = texts.iter().map(|t| self.classifier.encode(t)).collect();
        let probs = self.probabilities(&encoded).await?;
        let predictions: Vec<Prediction> = probs.iter().map(|p| self.classifier.prediction(p)).collect();
        to_js(&predictions)
    }

    /// `{prediction, tokens: [{token, weight}]}`: occlusion importance of each token.
    pub async fn explain(&self, text: String) -> Result<JsValue, JsError> {
        self.check_tokenizer()?;
        let occlusion = self.classifier.occlusion(&text);
        let probs = self.probabilities(&occlusion.variants).await?;
        let (prediction, tokens) = occlusion.weigh(&self.classifier, &probs);
        to_js(&Explanation { prediction, tokens })
    }

    /// Trains on `examples` (`[{text, label}]`); new labels add classes. Calls
    /// `on_progress(progress)` after every step and yields to the browser between steps.
    #[wasm_bindgen(js_name = fineTune)]
    pub async fn fine_tune(
        &mut self,
        examples: JsValue,
        options: JsValue,
        on_progress: Option<js_sys::Function>,
    ) -> Result<JsValue, JsError> {
        self.check_tokenizer()?;
        let examples: Vec<Example> = serde_wasm_bindgen::from_value(examples)
            .map_err(|e| JsError::new(&format!("examples must be [{{text, label}}]: {e}")))?;
        // The core's defaults and checks (the CLI's and Python's), and the core's fit loop,
        // driven here with asynchronous reads, yielding to the browser between steps.
        let options = options_object(options)
            .map_err(|e| JsError::new(&format!("fine-tuning options: {e}")))
            .and_then(|o| finetune_options_with(&o, Spelling::Camel).map_err(js_error))?;
        let data = Dataset { lines: (1..=examples.len()).collect(), examples, skipped_empty: 0 };
        // The page adds the labels its corrections bring.
        let mut job =
            Finetune::prepare(self.classifier.bundle(), &self.source, "corrections", &data, &[], true, &options)
                .map_err(js_error)?;
        let labels = job.labels().to_vec();
        let mut session = job.session().map_err(js_error)?;
        let (mut steps, mut last) = (0, (0.0, 0.0));
        while !session.done() {
            while let Some(step) = session.step() {
                let loss = step.loss.into_scalar_async::<f32>().await.map_err(js_error)? as f64;
                let correct = step.correct.into_scalar_async::<i64>().await.map_err(js_error)? as usize;
                let Event::Batch { epoch, batch, batches, loss, accuracy } = session.record(loss, correct, step.size)
                else {
                    unreachable!("record reports a batch")
                };
                steps += 1;
                last = (loss, accuracy);
                if let Some(callback) = &on_progress {
                    let (step, steps, epochs) = (batch, batches, options.epochs);
                    let report = to_js(&Progress { epoch, epochs, step, steps, loss, accuracy })?;
                    callback.call1(&JsValue::NULL, &report).map_err(|e| {
                        JsError::new(&format!(
                            "onProgress threw: {}",
                            e.as_string().unwrap_or_else(|| format!("{e:?}"))
                        ))
                    })?;
                }
                next_task().await;
            }
            // No validation sets here, so this reads nothing back.
            session.end_epoch();
        }
        let fitted = session.finish();
        let epochs = fitted.epochs_run;
        let (tuned, _) = job.finish(fitted);
        self.classifier.replace_bundle(tuned);
        to_js(&FineTuneSummary { epochs, steps, loss: last.0, accuracy: last.1, labels })
    }

    /// The current model as bundle bytes (`"f16"` halves the size; `"f32"` keeps every bit).
    #[wasm_bindgen(js_name = exportModel)]
    pub async fn export_model(&self, precision: Option<String>) -> Result<Vec<u8>, JsError> {
        let precision = precision.as_deref().unwrap_or("f16").parse::<Precision>().map_err(js_error)?;
        let model = to_host(&self.classifier.bundle().model).await?;
        let bundle = Bundle { manifest: self.classifier.manifest().clone(), model };
        bundle.to_bytes(precision).map_err(js_error)
    }
}

impl Engine {
    async fn probabilities(&self, encoded: &[Vec<usize>]) -> Result<Vec<Vec<f32>>, JsError> {
        let mut out = vec![Vec::new(); encoded.len()];
        for chunk in inference_batches(encoded) {
            let ids: Vec<Vec<usize>> = chunk.iter().map(|&i| encoded[i].clone()).collect();
            let data = self.classifier.probabilities_tensor(&ids).into_data_async().await.map_err(js_error)?;
            let flat: Vec<f32> = data.try_into_vec().map_err(|e| JsError::new(&format!("{e:?}")))?;
            scatter_rows(&mut out, &chunk, &flat);
        }
        Ok(out)
    }
}

/// A copy of `model` on the CPU, read asynchronously parameter by parameter (burn's own
/// device transfer and record export read synchronously, which WebGPU does not allow).
async fn to_host(model: &SentimentModel) -> Result<SentimentModel, JsError> {
    struct Collect(Vec<(ParamId, Vec<usize>, Tensor<1>)>);
    impl ModuleVisitor for Collect {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let value = param.val();
            let shape = value.dims().to_vec();
            let flat = value.reshape([shape.iter().product::<usize>()]);
            self.0.push((param.id, shape, flat));
        }
    }
    struct Replace {
        values: HashMap<ParamId, TensorData>,
        device: Device,
    }
    impl ModuleMapper for Replace {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            let id = param.id;
            let data = self.values.remove(&id).expect("every parameter was read");
            Param::initialized(id, Tensor::from_data(data, &self.device))
        }
    }

    let mut collect = Collect(Vec::new());
    model.visit(&mut collect);
    let mut values = HashMap::new();
    for (id, shape, flat) in collect.0 {
        let data = flat.into_data_async().await.map_err(js_error)?;
        let data = TensorData::new(
            data.convert::<f32>().try_into_vec::<f32>().map_err(|e| JsError::new(&format!("{e:?}")))?,
            shape,
        );
        values.insert(id, data);
    }
    Ok(model.clone().map(&mut Replace { values, device: Device::flex() }))
}
