//! Code packages: uploads (`ZipFile` in a request, or a blob uploaded before by
//! sha256) are checked, stored content-addressed in the blob store and unpacked once,
//! read-only, under the code root.

use base64::Engine as _;
use stratus_package::Limits;

use super::{CodeInput, Registry};
use crate::error::ApiError;

/// Largest zipped upload (50 MB), as Lambda.
pub const MAX_ZIP_BYTES: usize = 50 * 1024 * 1024;

impl Registry {
    /// Stores uploaded code (base64 `ZipFile`, or a blob uploaded before) and unpacks
    /// it once. Returns (sha256 hex, zipped size, base64 sha256 as Lambda reports it).
    pub(super) fn store_code(&self, code: &CodeInput) -> Result<(String, u64, String), ApiError> {
        if let Some(hex) = &code.blob_sha256 {
            return self.code_from_blob(hex);
        }
        let Some(zip_b64) = code.zip_file.as_deref() else {
            return Err(ApiError::invalid(
                "Code.ZipFile is required: Stratus stores code itself (S3Bucket/S3Key and ImageUri are not supported)",
            ));
        };
        let zip = base64::engine::general_purpose::STANDARD
            .decode(zip_b64.trim())
            .map_err(|e| ApiError::invalid(format!("Code.ZipFile is not valid base64: {e}")))?;
        let hex = hex::encode(stratus_package::sha256(&zip));
        self.put_blob(&hex, &zip)?;
        self.code_from_blob(&hex)
    }

    /// Stores a code package under its sha256 after checking the hash, the size
    /// limit and that it unpacks safely.
    pub fn put_blob(&self, expected_hex: &str, zip: &[u8]) -> Result<(), ApiError> {
        if zip.len() > MAX_ZIP_BYTES {
            return Err(ApiError::too_large(format!(
                "The zipped package is {} bytes; the limit is {MAX_ZIP_BYTES} bytes",
                zip.len()
            )));
        }
        let hex = hex::encode(stratus_package::sha256(zip));
        if hex != expected_hex {
            return Err(ApiError::invalid(format!(
                "The package's sha256 is {hex}, not {expected_hex}"
            )));
        }
        stratus_package::unpack_once(&self.code_root, &hex, zip, &Limits::default()).map_err(|e| {
            if e.is_user_error() {
                ApiError::invalid(format!("Could not unzip uploaded file. Please check your file, then try to upload again. ({e})"))
            } else {
                ApiError::service(format!("cannot store code: {e}"))
            }
        })?;
        self.blobs
            .put(zip)
            .map_err(|e| ApiError::service(format!("cannot store code: {e}")))?;
        Ok(())
    }

    /// Whether a package with this sha256 is stored.
    pub fn has_blob(&self, hex: &str) -> bool {
        self.blobs.contains(hex)
    }

    /// Opens the stored package with sha256 `hex` for reading, with its size.
    pub fn open_blob(&self, hex: &str) -> Result<(std::fs::File, u64), ApiError> {
        let missing =
            || ApiError::not_found(format!("No code package with sha256 {hex} is stored"));
        if !stratus_package::is_sha256_hex(hex) {
            return Err(ApiError::not_found(format!(
                "No code package '{hex}': a package is named by its sha256, 64 lowercase hex digits"
            )));
        }
        let path = self.blobs.local_path(hex).map_err(|e| match e {
            super::blobs::BlobsError::NotFound { .. } => missing(),
            e => ApiError::service(format!("cannot read code package {hex}: {e}")),
        })?;
        let file = std::fs::File::open(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => missing(),
            _ => ApiError::service(format!("cannot read code package {hex}: {e}")),
        })?;
        let len = file
            .metadata()
            .map_err(|e| ApiError::service(format!("cannot read code package {hex}: {e}")))?
            .len();
        Ok((file, len))
    }

    fn code_from_blob(&self, hex: &str) -> Result<(String, u64, String), ApiError> {
        if !stratus_package::is_sha256_hex(hex) || !self.blobs.contains(hex) {
            return Err(ApiError::invalid(format!(
                "No code package with sha256 {hex} has been uploaded (PUT /stratus/v1/blobs/{hex} first)"
            )));
        }
        let zip = self
            .blobs
            .get(hex)
            .map_err(|e| ApiError::service(format!("cannot read code: {e}")))?;
        if !self.code_root.join(hex).is_dir() {
            stratus_package::unpack_once(&self.code_root, hex, &zip, &Limits::default()).map_err(
                |e| ApiError::invalid(format!("Could not unzip stored package {hex}: {e}")),
            )?;
        }
        let digest = stratus_package::sha256(&zip);
        Ok((
            hex.to_string(),
            zip.len() as u64,
            base64::engine::general_purpose::STANDARD.encode(digest),
        ))
    }
}
