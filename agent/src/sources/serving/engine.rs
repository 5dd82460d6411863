//! The inference engines Tally reads, and how each is recognised: from a
//! pod annotation, a container image, a well-known port, or the page
//! itself.

use serde::{Deserialize, Serialize};

/// An inference engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    /// vLLM (`vllm:` families).
    Vllm,
    /// SGLang (`sglang:` families).
    Sglang,
    /// Hugging Face TGI (`tgi_` families).
    Tgi,
    /// NVIDIA Triton (`nv_` families), TensorRT-LLM backend included.
    Triton,
    /// Ollama: no metrics page; its loaded models from `/api/ps`.
    Ollama,
}

impl Engine {
    /// Every engine.
    pub const ALL: [Engine; 5] = [
        Engine::Vllm,
        Engine::Sglang,
        Engine::Tgi,
        Engine::Triton,
        Engine::Ollama,
    ];

    /// The `engine` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Engine::Vllm => "vllm",
            Engine::Sglang => "sglang",
            Engine::Tgi => "tgi",
            Engine::Triton => "triton",
            Engine::Ollama => "ollama",
        }
    }

    /// The engine named `text` (annotation values, config).
    pub fn parse(text: &str) -> Option<Engine> {
        let text = text.trim().to_ascii_lowercase();
        Engine::ALL
            .into_iter()
            .find(|e| e.as_str() == text)
            .or(match text.as_str() {
                "text-generation-inference" => Some(Engine::Tgi),
                "tritonserver" | "trtllm" | "tensorrt-llm" => Some(Engine::Triton),
                _ => None,
            })
    }

    /// Where the engine serves its metrics by default: port and path.
    pub fn default_endpoint(self) -> (u16, &'static str) {
        match self {
            Engine::Vllm => (8000, "/metrics"),
            Engine::Sglang => (30000, "/metrics"),
            // TGI serves /metrics on its HTTP port too (80 in its image,
            // 3000 outside); 9000 is `--prometheus-port`.
            Engine::Tgi => (80, "/metrics"),
            Engine::Triton => (8002, "/metrics"),
            Engine::Ollama => (11434, "/api/ps"),
        }
    }

    /// The engine a container image belongs to (`vllm/vllm-openai:v0.12`,
    /// `lmsysorg/sglang`, `ghcr.io/huggingface/text-generation-inference`,
    /// `nvcr.io/nvidia/tritonserver:25.01-trtllm-python-py3`).
    pub fn from_image(image: &str) -> Option<Engine> {
        // The repository path without registry host and tag.
        let repository = image.split('@').next().unwrap_or(image);
        let repository = match repository.rsplit_once(':') {
            Some((head, tag)) if !tag.contains('/') => head,
            _ => repository,
        };
        let name = repository.rsplit('/').next().unwrap_or(repository);
        match name {
            "vllm-openai" | "vllm" | "vllm-tpu" | "vllm-cpu" => Some(Engine::Vllm),
            "sglang" => Some(Engine::Sglang),
            "text-generation-inference" | "tgi" => Some(Engine::Tgi),
            "tritonserver" => Some(Engine::Triton),
            "ollama" => Some(Engine::Ollama),
            _ => None,
        }
    }

    /// The engine a static URL names by its path (Ollama's `/api/ps`).
    pub fn from_url(url: &str) -> Option<Engine> {
        url.trim_end_matches('/')
            .ends_with("/api/ps")
            .then_some(Engine::Ollama)
    }

    /// The engine a page comes from, by its first recognisable sample.
    pub fn from_sample_name(name: &str) -> Option<Engine> {
        if name.starts_with("vllm:") {
            Some(Engine::Vllm)
        } else if name.starts_with("sglang:") {
            Some(Engine::Sglang)
        } else if name.starts_with("tgi_") {
            Some(Engine::Tgi)
        } else if name.starts_with("nv_inference_") || name.starts_with("nv_trt_llm_") {
            Some(Engine::Triton)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_and_names_are_recognised() {
        assert_eq!(
            Engine::from_image("docker.io/vllm/vllm-openai:v0.12.0"),
            Some(Engine::Vllm)
        );
        assert_eq!(
            Engine::from_image("registry:5000/lmsysorg/sglang:v0.5.3-cu126"),
            Some(Engine::Sglang)
        );
        assert_eq!(
            Engine::from_image("ghcr.io/huggingface/text-generation-inference@sha256:ab"),
            Some(Engine::Tgi)
        );
        assert_eq!(
            Engine::from_image("nvcr.io/nvidia/tritonserver:25.01-trtllm-python-py3"),
            Some(Engine::Triton)
        );
        assert_eq!(Engine::from_image("nginx:1.27"), None);
        assert_eq!(
            Engine::from_image("ollama/ollama:0.9.0"),
            Some(Engine::Ollama)
        );
        assert_eq!(
            Engine::from_url("http://127.0.0.1:11434/api/ps"),
            Some(Engine::Ollama)
        );
        assert_eq!(Engine::from_url("http://127.0.0.1:8000/metrics"), None);
        assert_eq!(Engine::parse(" vLLM "), Some(Engine::Vllm));
        assert_eq!(
            Engine::parse("text-generation-inference"),
            Some(Engine::Tgi)
        );
        assert_eq!(Engine::parse("ollama"), Some(Engine::Ollama));
        assert_eq!(Engine::parse("llama.cpp"), None);
        assert_eq!(
            Engine::from_sample_name("nv_inference_request_success"),
            Some(Engine::Triton)
        );
        assert_eq!(
            Engine::from_sample_name("python_gc_objects_collected_total"),
            None
        );
    }
}
