//! The object store a sink writes to: S3 (or an S3-compatible server) through object_store, or a
//! local directory. Objects at or under one part go up in one PUT; larger ones as multipart
//! uploads.

use std::sync::Arc;

use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectStore, PutPayload, WriteMultipart};

use crate::config::Target;

/// Why the store cannot be opened.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create the directory {path}: {source}")]
    Directory {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("cannot set up the object store: {0}")]
    Open(#[from] object_store::Error),
}

/// Opens `target`. S3 credentials, region and endpoint not in the config come from the
/// environment (`AWS_*`), a web identity token, or the instance profile.
pub fn open(target: &Target) -> Result<Arc<dyn ObjectStore>, StoreError> {
    match target {
        Target::Directory(path) => {
            std::fs::create_dir_all(path).map_err(|source| StoreError::Directory {
                path: path.clone(),
                source,
            })?;
            Ok(Arc::new(LocalFileSystem::new_with_prefix(path)?))
        }
        Target::S3 {
            bucket,
            endpoint,
            region,
            path_style,
            access_key_id,
            secret_access_key,
            session_token,
        } => {
            let mut builder = AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .with_virtual_hosted_style_request(!path_style);
            if let Some(endpoint) = endpoint {
                builder = builder
                    .with_allow_http(endpoint.starts_with("http://"))
                    .with_endpoint(endpoint);
            }
            if let Some(region) = region {
                builder = builder.with_region(region);
            }
            if let (Some(id), Some(secret)) = (access_key_id, secret_access_key) {
                builder = builder
                    .with_access_key_id(id)
                    .with_secret_access_key(secret);
            }
            if let Some(token) = session_token {
                builder = builder.with_token(token);
            }
            Ok(Arc::new(builder.build()?))
        }
    }
}

/// Writes `bytes` at `key`: one PUT up to `part_bytes`, a multipart upload above. A multipart
/// upload whose completion fails is aborted; parts of one that failed earlier stay until the
/// bucket's `AbortIncompleteMultipartUpload` lifecycle rule removes them.
pub async fn put(
    store: &dyn ObjectStore,
    key: &str,
    payload: &PutPayload,
    part_bytes: usize,
) -> Result<(), object_store::Error> {
    let path = Path::from(key);
    if payload.content_length() <= part_bytes {
        // A payload is shared buffers: cloning it copies no bytes.
        store.put(&path, payload.clone()).await?;
        return Ok(());
    }
    let upload = store.put_multipart(&path).await?;
    let mut writer = WriteMultipart::new_with_chunk_size(upload, part_bytes);
    for chunk in payload.iter() {
        writer.put(chunk.clone());
    }
    writer.finish().await?;
    Ok(())
}
