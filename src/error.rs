//! The crate's one error type. Every variant carries the fields a user needs to fix the problem
//! (the key, the expected and found shape, the path, the limit that was exceeded).

use std::path::PathBuf;

/// Result with the crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a readable safetensors file: {reason}")]
    NotSafetensors { path: PathBuf, reason: String },
    #[error("model is missing tensor `{key}`")]
    MissingTensor { key: String },
    #[error("tensor `{key}` has shape {found:?}, expected {expected:?}")]
    ShapeMismatch {
        key: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    #[error("tensor `{key}` has dtype {dtype}; supported: F32, F16, BF16")]
    UnsupportedDtype { key: String, dtype: String },
    #[error("tensor `{key}` holds a non-finite value ({value}) at flat index {index}")]
    NonFinite {
        key: String,
        index: usize,
        value: f32,
    },
    #[error("feature widths must double from level to level: {features:?} (level {level}: {found}, expected {expected})")]
    WidthsDoNotDouble {
        features: Vec<usize>,
        level: usize,
        expected: usize,
        found: usize,
    },
    #[error("bad metadata `{key}` = {value:?}: {reason}")]
    BadMetadata {
        key: String,
        value: String,
        reason: String,
    },
    #[error("{path}: cannot read image: {reason}")]
    Image { path: PathBuf, reason: String },
    #[error("{path}: bad .npy file: {reason}")]
    Npy { path: PathBuf, reason: String },
    #[error("input shape {shape:?}: {reason}")]
    BadInput { shape: Vec<usize>, reason: String },
    #[error("no GPU adapter found (try --device cpu, or install a Vulkan driver such as Mesa's lavapipe)")]
    NoAdapter,
    #[error("{what} needs {needed} bytes, above the adapter's {limit} of {max} bytes (use a smaller input, or --device cpu)")]
    ExceedsLimit {
        what: String,
        needed: u64,
        limit: &'static str,
        max: u64,
    },
    #[error("GPU error: {0}")]
    Gpu(String),
    /// An error about a file's content, with the file named.
    #[error("{path}: {source}")]
    InFile {
        path: PathBuf,
        #[source]
        source: Box<Error>,
    },
    #[error("bad model: {0}")]
    BadModel(String),
    #[error("unsupported op `{op}` (node `{node}`); supported ops: {supported}")]
    UnsupportedOp {
        op: String,
        node: String,
        supported: String,
    },
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
