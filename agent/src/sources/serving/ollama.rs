//! Ollama has no metrics page (ollama/ollama issue #3144): its
//! `GET /api/ps` lists the loaded models with the GPU memory each holds
//! (`size_vram`), which is what the agent reads. Request, token and latency
//! figures live only in Ollama's per-response fields and logs; deriving
//! them waits on the log source.

use serde::Deserialize;

use super::engine::Engine;
use super::normalise::{ModelPage, Page};

#[derive(Debug, Deserialize)]
struct Ps {
    #[serde(default)]
    models: Vec<Loaded>,
}

#[derive(Debug, Deserialize)]
struct Loaded {
    /// `llama3.2:3b`.
    #[serde(default)]
    name: String,
    /// The same, or a digest-qualified reference.
    #[serde(default)]
    model: String,
    /// Bytes of the model in GPU memory.
    #[serde(default)]
    size_vram: Option<f64>,
}

/// Reads an `/api/ps` answer; one that is not its JSON counts as a
/// `json` error and yields no model.
pub fn read(body: &[u8]) -> Page {
    let mut page = Page {
        engine: Some(Engine::Ollama),
        ..Page::default()
    };
    match serde_json::from_slice::<Ps>(body) {
        Ok(ps) => {
            for loaded in ps.models {
                let name = if loaded.name.is_empty() {
                    loaded.model
                } else {
                    loaded.name
                };
                if name.is_empty() {
                    continue;
                }
                page.samples += 1;
                page.models.insert(
                    name,
                    ModelPage {
                        gpu_memory: loaded.size_vram,
                        ..ModelPage::default()
                    },
                );
            }
        }
        Err(_) => {
            page.errors.insert("json", 1);
        }
    }
    page
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loaded_models_and_their_gpu_memory() {
        let page = read(
            br#"{"models":[{"name":"llama3.2:3b","model":"llama3.2:3b","size":3800000000,"digest":"a80c4f17acd5","details":{"family":"llama","parameter_size":"3.2B","quantization_level":"Q4_K_M"},"expires_at":"2026-12-01T16:30:00Z","size_vram":3400000000,"context_length":4096},{"name":"nomic-embed-text:latest","size_vram":0}]}"#,
        );
        assert_eq!(page.models.len(), 2);
        assert_eq!(page.models["llama3.2:3b"].gpu_memory, Some(3.4e9));
        assert_eq!(page.models["nomic-embed-text:latest"].gpu_memory, Some(0.0));
        assert!(read(br#"{"models":[]}"#).models.is_empty());
        assert_eq!(read(b"404 page not found").errors.get("json"), Some(&1));
    }
}
