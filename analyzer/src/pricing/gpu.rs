//! Canonical GPU model names. NVML, DCGM and GPU feature discovery spell
//! one model many ways ("NVIDIA A100-SXM4-40GB", "NVIDIA-A100-SXM4-40GB",
//! "NVIDIA A100-SXM4-40GB MIG 1g.5gb"); the catalog keys on one name per
//! priced model.

/// Canonical models the catalog knows, by name.
pub const CANONICAL_GPU_MODELS: [&str; 11] = [
    "H100-80GB",
    "H100-NVL-94GB",
    "H200-141GB",
    "B200",
    "A100-40GB",
    "A100-80GB",
    "A30-24GB",
    "L40S",
    "L4",
    "A10G",
    "T4",
];

/// The canonical model of a GPU name as NVML (`nvidia-smi`), DCGM or GPU
/// feature discovery (dashes for spaces) report it, or a canonical name
/// itself. A MIG suffix is ignored: a MIG device is priced by its parent.
/// Unknown models, including near namesakes the catalog does not price
/// (A10, L40, H20, GH200), give `None` rather than a wrong guess.
pub fn canonical_gpu_model(name: &str) -> Option<&'static str> {
    let upper = name.to_ascii_uppercase();
    let mut tokens = upper
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|t| !t.is_empty())
        // Everything from "MIG" on names the partition, not the board.
        .take_while(|t| *t != "MIG")
        .filter(|t| !matches!(*t, "NVIDIA" | "TESLA"));
    let model = tokens.next()?;
    let rest: Vec<&str> = tokens.collect();
    let has = |token: &str| rest.contains(&token);
    let memory_gb = rest
        .iter()
        .find_map(|t| t.strip_suffix("GB")?.parse::<u32>().ok());
    match model {
        // The PCIe and SXM 80 GB boards share MIG geometry and price class.
        "H100" if has("NVL") || memory_gb == Some(94) => Some("H100-NVL-94GB"),
        "H100" => Some("H100-80GB"),
        "H200" => Some("H200-141GB"),
        "B200" => Some("B200"),
        // A bare "A100" is the original 40 GB board; NVML always names the
        // 80 GB one with its size.
        "A100" if memory_gb == Some(80) => Some("A100-80GB"),
        "A100" => Some("A100-40GB"),
        "A30" => Some("A30-24GB"),
        "L40S" => Some("L40S"),
        "L4" => Some("L4"),
        "A10G" => Some("A10G"),
        "T4" => Some("T4"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Names as NVML and GPU feature discovery report them.
    #[test]
    fn nvml_names_canonicalise() {
        let cases = [
            ("NVIDIA H100 80GB HBM3", Some("H100-80GB")),
            ("NVIDIA H100 PCIe", Some("H100-80GB")),
            ("NVIDIA-H100-80GB-HBM3", Some("H100-80GB")),
            ("NVIDIA H100 NVL", Some("H100-NVL-94GB")),
            ("NVIDIA H200", Some("H200-141GB")),
            ("NVIDIA H200 141GB HBM3e", Some("H200-141GB")),
            ("NVIDIA A100-SXM4-40GB", Some("A100-40GB")),
            ("NVIDIA A100-PCIE-40GB", Some("A100-40GB")),
            ("NVIDIA A100-SXM4-80GB", Some("A100-80GB")),
            ("NVIDIA A100 80GB PCIe", Some("A100-80GB")),
            ("NVIDIA A100-SXM4-40GB MIG 1g.5gb", Some("A100-40GB")),
            ("NVIDIA-A100-SXM4-80GB-MIG-1g.10gb", Some("A100-80GB")),
            ("NVIDIA A10G", Some("A10G")),
            ("NVIDIA L40S", Some("L40S")),
            ("NVIDIA L4", Some("L4")),
            ("Tesla T4", Some("T4")),
            ("NVIDIA B200", Some("B200")),
            ("NVIDIA A30", Some("A30-24GB")),
            ("NVIDIA A10", None),
            ("NVIDIA L40", None),
            ("NVIDIA H20", None),
            ("NVIDIA GH200 480GB", None),
            ("NVIDIA GeForce RTX 4090", None),
            ("", None),
        ];
        for (name, expected) in cases {
            assert_eq!(canonical_gpu_model(name), expected, "{name}");
        }
    }

    #[test]
    fn canonical_names_are_fixed_points() {
        for name in CANONICAL_GPU_MODELS {
            assert_eq!(canonical_gpu_model(name), Some(name));
            assert_eq!(
                canonical_gpu_model(&name.to_ascii_lowercase()),
                Some(name),
                "{name} in lower case"
            );
        }
    }
}
