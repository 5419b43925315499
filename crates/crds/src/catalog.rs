//! The instance type catalog: vCPUs, memory, architecture, GPUs and on-demand list price of every
//! instance type a Workspace may use. Operators can replace the built-in catalog with a YAML file
//! of the same shape (see docs/operations.md).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::v1alpha1::{Arch, GpuType};

/// A price in billionths of a US dollar, so sums stay exact.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Usd(u64);

impl Usd {
    const SCALE: u64 = 1_000_000_000;

    /// From nano-dollars.
    pub const fn from_nanos(n: u64) -> Self {
        Self(n)
    }

    /// Nano-dollars.
    pub const fn nanos(self) -> u64 {
        self.0
    }

    /// Parses a non-negative decimal string such as `"0.0832"` (at most 9 decimals).
    pub fn parse(s: &str) -> Result<Self, CatalogError> {
        let bad = || CatalogError::BadPrice(s.to_owned());
        let (int, frac) = s.split_once('.').unwrap_or((s, ""));
        if int.is_empty()
            || (s.contains('.') && frac.is_empty())
            || frac.len() > 9
            || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
        {
            return Err(bad());
        }
        let int: u64 = int.parse().map_err(|_| bad())?;
        let frac_nanos: u64 = if frac.is_empty() {
            0
        } else {
            let scale = 10u64.pow(u32::try_from(9 - frac.len()).map_err(|_| bad())?);
            frac.parse::<u64>().map_err(|_| bad())? * scale
        };
        int.checked_mul(Self::SCALE).and_then(|n| n.checked_add(frac_nanos)).map(Self).ok_or_else(bad)
    }

    /// Rounds to 4 decimals (half up), the precision shown in `status.estimatedHourlyUsd`.
    pub fn to_decimal_4(self) -> String {
        let tenth_millis = (self.0 + 50_000) / 100_000;
        format!("{}.{:04}", tenth_millis / 10_000, tenth_millis % 10_000)
    }
}

impl std::ops::Add for Usd {
    type Output = Usd;
    fn add(self, rhs: Usd) -> Usd {
        Usd(self.0.saturating_add(rhs.0))
    }
}

impl fmt::Display for Usd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_decimal_4())
    }
}

/// GPUs carried by an instance type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gpus {
    /// GPU model.
    #[serde(rename = "type")]
    pub gpu_type: GpuType,
    /// Number of GPUs.
    pub count: u8,
}

/// One instance type of the catalog.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstanceType {
    /// EC2 name, such as t3.large.
    pub name: String,
    /// vCPUs.
    pub vcpus: u32,
    /// Memory in MiB.
    pub memory_mib: u32,
    /// CPU architecture.
    pub arch: Arch,
    /// GPUs, if any.
    pub gpus: Option<Gpus>,
    /// On-demand list price per hour.
    pub hourly: Usd,
}

/// The on-disk shape of one catalog entry.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct EntryFile {
    name: String,
    vcpus: u32,
    memory_mib: u32,
    arch: Arch,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gpu: Option<Gpus>,
    hourly_usd: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CatalogFile {
    instance_types: Vec<EntryFile>,
}

/// Why a catalog file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// Not YAML of the expected shape.
    #[error("failed to parse the catalog: {0}")]
    Parse(String),
    /// A price is not a decimal string.
    #[error("failed to parse price {0:?}: expected a decimal such as \"0.0832\"")]
    BadPrice(String),
    /// An entry makes no sense.
    #[error("invalid catalog entry {name:?}: {problem}")]
    Invalid {
        /// Instance type name.
        name: String,
        /// What is wrong.
        problem: &'static str,
    },
}

/// The instance type catalog, keyed by name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Catalog {
    types: BTreeMap<String, InstanceType>,
}

/// (name, vCPUs, memory GiB, arch, GPU, us-east-1 on-demand Linux list price per hour).
type Row = (&'static str, u32, u32, Arch, Option<(GpuType, u8)>, &'static str);

const X86: Arch = Arch::X86_64;
const ARM: Arch = Arch::Arm64;

/// The built-in catalog (us-east-1 list prices, 2026).
const BUILTIN: &[Row] = &[
    ("t3.micro", 2, 1, X86, None, "0.0104"),
    ("t3.small", 2, 2, X86, None, "0.0208"),
    ("t3.medium", 2, 4, X86, None, "0.0416"),
    ("t3.large", 2, 8, X86, None, "0.0832"),
    ("t3.xlarge", 4, 16, X86, None, "0.1664"),
    ("t3.2xlarge", 8, 32, X86, None, "0.3328"),
    ("t4g.small", 2, 2, ARM, None, "0.0168"),
    ("t4g.medium", 2, 4, ARM, None, "0.0336"),
    ("t4g.large", 2, 8, ARM, None, "0.0672"),
    ("t4g.xlarge", 4, 16, ARM, None, "0.1344"),
    ("m6i.large", 2, 8, X86, None, "0.096"),
    ("m6i.xlarge", 4, 16, X86, None, "0.192"),
    ("m6i.2xlarge", 8, 32, X86, None, "0.384"),
    ("m7g.large", 2, 8, ARM, None, "0.0816"),
    ("m7g.xlarge", 4, 16, ARM, None, "0.1632"),
    ("c6i.xlarge", 4, 8, X86, None, "0.17"),
    ("r6i.xlarge", 4, 32, X86, None, "0.252"),
    ("g4dn.xlarge", 4, 16, X86, Some((GpuType::T4, 1)), "0.526"),
    ("g4dn.12xlarge", 48, 192, X86, Some((GpuType::T4, 4)), "3.912"),
    ("g6.xlarge", 4, 16, X86, Some((GpuType::L4, 1)), "0.8048"),
    ("g6.12xlarge", 48, 192, X86, Some((GpuType::L4, 4)), "4.6016"),
    ("g5.xlarge", 4, 16, X86, Some((GpuType::A10G, 1)), "1.006"),
    ("g5.12xlarge", 48, 192, X86, Some((GpuType::A10G, 4)), "5.672"),
    ("p4d.24xlarge", 96, 1152, X86, Some((GpuType::A100, 8)), "32.7726"),
    ("p5.48xlarge", 192, 2048, X86, Some((GpuType::H100, 8)), "98.32"),
];

impl Catalog {
    /// The catalog shipped with the operator.
    pub fn builtin() -> Self {
        let types = BUILTIN
            .iter()
            .map(|&(name, vcpus, mem_gib, arch, gpu, price)| {
                let entry = InstanceType {
                    name: name.to_owned(),
                    vcpus,
                    memory_mib: mem_gib * 1024,
                    arch,
                    gpus: gpu.map(|(gpu_type, count)| Gpus { gpu_type, count }),
                    // The table is a constant checked by a unit test; a typo would read as free.
                    hourly: Usd::parse(price).unwrap_or_default(),
                };
                (name.to_owned(), entry)
            })
            .collect();
        Self { types }
    }

    /// Parses an operator-supplied catalog file (see docs/operations.md for the format).
    pub fn from_yaml(text: &str) -> Result<Self, CatalogError> {
        let file: CatalogFile = serde_yaml_ng::from_str(text).map_err(|e| CatalogError::Parse(e.to_string()))?;
        let mut types = BTreeMap::new();
        for e in file.instance_types {
            let invalid = |problem| CatalogError::Invalid { name: e.name.clone(), problem };
            if e.name.is_empty() || !e.name.contains('.') {
                return Err(invalid("name must look like family.size"));
            }
            if e.vcpus == 0 || e.memory_mib == 0 {
                return Err(invalid("vcpus and memoryMib must be positive"));
            }
            if e.gpu.is_some_and(|g| g.count == 0 || g.count > 8) {
                return Err(invalid("gpu.count must be 1..8"));
            }
            let hourly = Usd::parse(&e.hourly_usd)?;
            let entry = InstanceType {
                name: e.name.clone(),
                vcpus: e.vcpus,
                memory_mib: e.memory_mib,
                arch: e.arch,
                gpus: e.gpu,
                hourly,
            };
            if types.insert(e.name.clone(), entry).is_some() {
                return Err(invalid("listed twice"));
            }
        }
        Ok(Self { types })
    }

    /// Renders the catalog in the file format `from_yaml` reads.
    pub fn to_yaml(&self) -> Result<String, CatalogError> {
        let file = CatalogFile {
            instance_types: self
                .types
                .values()
                .map(|t| EntryFile {
                    name: t.name.clone(),
                    vcpus: t.vcpus,
                    memory_mib: t.memory_mib,
                    arch: t.arch,
                    gpu: t.gpus,
                    hourly_usd: t.hourly.to_string(),
                })
                .collect(),
        };
        serde_yaml_ng::to_string(&file).map_err(|e| CatalogError::Parse(e.to_string()))
    }

    /// Looks an instance type up by name.
    pub fn get(&self, name: &str) -> Option<&InstanceType> {
        self.types.get(name)
    }

    /// Every instance type, by name.
    pub fn iter(&self) -> impl Iterator<Item = &InstanceType> {
        self.types.values()
    }

    /// The cheapest type carrying `count` or more GPUs of `gpu_type`; ties go to the name that
    /// sorts first, so the choice is deterministic.
    pub fn cheapest_with_gpu(&self, gpu_type: GpuType, count: u8) -> Option<&InstanceType> {
        self.types
            .values()
            .filter(|t| t.gpus.is_some_and(|g| g.gpu_type == gpu_type && g.count >= count))
            .min_by(|a, b| a.hourly.cmp(&b.hourly).then_with(|| a.name.cmp(&b.name)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_covers_api_md_and_every_price_parses() {
        for &(name, _, _, _, _, price) in BUILTIN {
            assert!(Usd::parse(price).is_ok_and(|p| p.nanos() > 0), "{name} has price {price}");
        }
        let c = Catalog::builtin();
        for name in [
            "t3.micro",
            "t3.small",
            "t3.medium",
            "t3.large",
            "t3.xlarge",
            "t3.2xlarge",
            "t4g.small",
            "t4g.medium",
            "t4g.large",
            "t4g.xlarge",
            "m6i.large",
            "m6i.xlarge",
            "m6i.2xlarge",
            "m7g.large",
            "m7g.xlarge",
            "c6i.xlarge",
            "r6i.xlarge",
            "g4dn.xlarge",
            "g4dn.12xlarge",
            "g6.xlarge",
            "g6.12xlarge",
            "g5.xlarge",
            "g5.12xlarge",
            "p4d.24xlarge",
            "p5.48xlarge",
        ] {
            assert!(c.get(name).is_some(), "{name} missing");
        }
        let p4d = c.get("p4d.24xlarge").map(|t| t.gpus);
        assert_eq!(p4d, Some(Some(Gpus { gpu_type: GpuType::A100, count: 8 })));
        assert_eq!(c.get("m7g.large").map(|t| t.arch), Some(Arch::Arm64));
    }

    #[test]
    fn prices_parse_and_round() {
        assert_eq!(Usd::parse("0.0832").map(Usd::nanos).ok(), Some(83_200_000));
        assert_eq!(Usd::parse("98.32").map(|u| u.to_string()).ok(), Some("98.3200".into()));
        assert_eq!(Usd::from_nanos(83_250_000).to_string(), "0.0833");
        assert_eq!(Usd::from_nanos(83_249_999).to_string(), "0.0832");
        for bad in ["", ".5", "1.", "-1", "1e3", "0.0000000001", "abc", "1.2.3"] {
            assert!(Usd::parse(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn yaml_round_trip_and_rejections() {
        let c = Catalog::builtin();
        let text = c.to_yaml().expect("render");
        assert_eq!(Catalog::from_yaml(&text).expect("parse"), c);
        let dup = "instanceTypes:\n- {name: a.b, vcpus: 1, memoryMib: 1, arch: x86_64, hourlyUsd: '1'}\n- {name: a.b, vcpus: 1, memoryMib: 1, arch: x86_64, hourlyUsd: '1'}\n";
        assert!(matches!(Catalog::from_yaml(dup), Err(CatalogError::Invalid { problem: "listed twice", .. })));
        let typo = "instanceTypes:\n- {name: a.b, vcpu: 1, memoryMib: 1, arch: x86_64, hourlyUsd: '1'}\n";
        assert!(matches!(Catalog::from_yaml(typo), Err(CatalogError::Parse(_))));
    }

    #[test]
    fn cheapest_gpu_type() {
        let c = Catalog::builtin();
        let name = |g, n| c.cheapest_with_gpu(g, n).map(|t| t.name.as_str());
        assert_eq!(name(GpuType::T4, 1), Some("g4dn.xlarge"));
        assert_eq!(name(GpuType::T4, 2), Some("g4dn.12xlarge"));
        assert_eq!(name(GpuType::A10G, 4), Some("g5.12xlarge"));
        assert_eq!(name(GpuType::L4, 5), None);
        assert_eq!(name(GpuType::H100, 1), Some("p5.48xlarge"));
    }
}
