#!/usr/bin/env python3
"""Writes analyzer/data/pricing.json, the pricing catalog Tally ships.

The JSON file is the artifact (users do not have ../shared); this script
documents how it was made and makes it reproducible:

    python3 scripts/gen-pricing.py            # rewrite the catalog
    python3 scripts/gen-pricing.py --check    # fail if the file is stale

Inputs:
  * ../shared/data/aws-spot-advisor-2025-06-28.json, a snapshot of the AWS
    Spot Instance Advisor (as published by alexei-led/spotinfo). For AWS it
    gives each type's vCPUs and memory, the spot savings (`s`, percent) and
    the interruption-frequency bucket (`r`, an index into `ranges`), read
    for us-east-1 / Linux.
  * The tables below: on-demand list prices (secondary sources, to be
    confirmed against each provider's price API), GCP and Azure shapes,
    GPU models, egress, storage and commitment discounts.

Each GPU model's per-GPU hourly price is derived the way the analyzer
splits a node (analyzer/src/pricing/node.rs): the provider's general-purpose
$/vCPU-h and $/GiB-h are solved by least squares from its reference
families, and the GPUs take the rest of the instance price; the model's
price is the cheapest such share in the catalog. A Rust test checks that
the two computations agree.

Stdlib only; output is deterministic (sorted keys, sorted entries).
"""

import json
import os
import sys

AS_OF = "2026-11-28"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "analyzer", "data", "pricing.json")
ADVISOR = os.path.join(
    os.path.dirname(ROOT), "shared", "data", "aws-spot-advisor-2025-06-28.json"
)

LIST_CAVEAT = (
    "secondary-source list price (public price pages and trackers); "
    "confirm against the provider's price API before relying on it"
)
AWS_SOURCE = (
    "AWS Spot Instance Advisor snapshot 2025-06-28 (alexei-led/spotinfo); "
    "on-demand: AWS public list price us-east-1; " + LIST_CAVEAT
)
GCP_SOURCE = (
    "on-demand: GCP public list price us-central1; " + LIST_CAVEAT + "; "
    "spot_discount: typical Spot VM discount, GCP publishes no "
    "interruption advisor (bucket unknown)"
)
AZURE_SOURCE = (
    "on-demand: Azure public list price eastus (Linux pay-as-you-go); "
    + LIST_CAVEAT + "; spot_discount: typical Spot VM discount, Azure "
    "publishes no interruption advisor (bucket unknown)"
)

# AWS: type -> (on-demand $/h us-east-1, GPU model, GPUs). Shapes come from
# the advisor snapshot. p4/p5 prices are after the June 2025 cut
# (p5.48xlarge 98.32 -> 55.04, p4d 32.77 -> 21.96, p4de 40.97 -> 27.45).
AWS = {
    "p5.48xlarge": (55.04, "H100-80GB", 8),
    "p5en.48xlarge": (63.296, "H200-141GB", 8),
    "p4d.24xlarge": (21.96, "A100-40GB", 8),
    "p4de.24xlarge": (27.447, "A100-80GB", 8),
    "g6e.xlarge": (1.861, "L40S", 1),
    "g6e.2xlarge": (2.242, "L40S", 1),
    "g6e.12xlarge": (10.493, "L40S", 4),
    "g6e.48xlarge": (30.131, "L40S", 8),
    "g6.xlarge": (0.8048, "L4", 1),
    "g6.2xlarge": (0.9776, "L4", 1),
    "g6.12xlarge": (4.6016, "L4", 4),
    "g6.48xlarge": (13.3504, "L4", 8),
    "g5.xlarge": (1.006, "A10G", 1),
    "g5.2xlarge": (1.212, "A10G", 1),
    "g5.12xlarge": (5.672, "A10G", 4),
    "g5.48xlarge": (16.288, "A10G", 8),
    "g4dn.xlarge": (0.526, "T4", 1),
    "g4dn.2xlarge": (0.752, "T4", 1),
    "g4dn.12xlarge": (3.912, "T4", 4),
}
# List prices before AWS's June 2025 cut, kept in the entries' source so a
# reader comparing with older figures sees why they differ.
AWS_PRE_CUT = {"p5.48xlarge": 98.32, "p4d.24xlarge": 32.77, "p4de.24xlarge": 40.97}
SIZES = ["large", "xlarge", "2xlarge", "4xlarge", "8xlarge"]
# CPU families: price of the .large size; each size up doubles it.
AWS_CPU_LARGE = {
    "m6i": 0.096,
    "c6i": 0.085,
    "r6i": 0.126,
    "m7i": 0.1008,
    "c7i": 0.08925,
    "m7g": 0.0816,
}
for fam, large in AWS_CPU_LARGE.items():
    for i, size in enumerate(SIZES):
        AWS[f"{fam}.{size}"] = (round(large * 2**i, 6), None, 0)

# GCP: type -> (family, vCPUs, memory GiB, $/h us-central1, GPU, GPUs,
# spot discount). n2 prices are the N2 SKU rates ($0.031611/vCPU-h,
# $0.004237/GiB-h) times the shape; n2-highcpu/-highmem give the fit
# below two memory ratios to solve from.
GCP = {
    "a3-highgpu-8g": ("a3", 208, 1872, 88.253, "H100-80GB", 8, 0.60),
    "a3-ultragpu-8g": ("a3", 224, 2952, 84.806, "H200-141GB", 8, 0.60),
    "a2-highgpu-1g": ("a2", 12, 85, 3.673385, "A100-40GB", 1, 0.65),
    "a2-highgpu-2g": ("a2", 24, 170, 7.34677, "A100-40GB", 2, 0.65),
    "a2-highgpu-4g": ("a2", 48, 340, 14.69354, "A100-40GB", 4, 0.65),
    "a2-highgpu-8g": ("a2", 96, 680, 29.38708, "A100-40GB", 8, 0.65),
    "a2-ultragpu-1g": ("a2", 12, 170, 5.06897, "A100-80GB", 1, 0.65),
    "a2-ultragpu-8g": ("a2", 96, 1360, 40.55176, "A100-80GB", 8, 0.65),
    "g2-standard-4": ("g2", 4, 16, 0.70683, "L4", 1, 0.65),
    "g2-standard-8": ("g2", 8, 32, 0.85362, "L4", 1, 0.65),
    "g2-standard-48": ("g2", 48, 192, 3.99939, "L4", 4, 0.65),
    "n2-standard-4": ("n2", 4, 16, 0.194236, None, 0, 0.70),
    "n2-standard-8": ("n2", 8, 32, 0.388472, None, 0, 0.70),
    "n2-standard-16": ("n2", 16, 64, 0.776944, None, 0, 0.70),
    "n2-highcpu-8": ("n2", 8, 8, 0.286784, None, 0, 0.70),
    "n2-highmem-8": ("n2", 8, 64, 0.524056, None, 0, 0.70),
    "e2-standard-4": ("e2", 4, 16, 0.134012, None, 0, 0.70),
    "e2-standard-8": ("e2", 8, 32, 0.268024, None, 0, 0.70),
    "c3-standard-8": ("c3", 8, 32, 0.33577, None, 0, 0.70),
}

# Azure: same layout, eastus. ND96isr_H200_v5 is the least certain figure.
AZURE = {
    "Standard_ND96isr_H100_v5": ("NDH100v5", 96, 1900, 98.32, "H100-80GB", 8, 0.60),
    "Standard_ND96isr_H200_v5": ("NDH200v5", 96, 1850, 110.24, "H200-141GB", 8, 0.60),
    "Standard_ND96asr_v4": ("NDA100v4", 96, 900, 27.197, "A100-40GB", 8, 0.60),
    "Standard_NC24ads_A100_v4": ("NCA100v4", 24, 220, 3.673, "A100-80GB", 1, 0.60),
    "Standard_NC48ads_A100_v4": ("NCA100v4", 48, 440, 7.346, "A100-80GB", 2, 0.60),
    "Standard_NC96ads_A100_v4": ("NCA100v4", 96, 880, 14.692, "A100-80GB", 4, 0.60),
    "Standard_NC4as_T4_v3": ("NCT4v3", 4, 28, 0.526, "T4", 1, 0.65),
    "Standard_NC8as_T4_v3": ("NCT4v3", 8, 56, 0.752, "T4", 1, 0.65),
    "Standard_D4s_v5": ("Dsv5", 4, 16, 0.192, None, 0, 0.70),
    "Standard_D8s_v5": ("Dsv5", 8, 32, 0.384, None, 0, 0.70),
    "Standard_D16s_v5": ("Dsv5", 16, 64, 0.768, None, 0, 0.70),
    "Standard_E8s_v5": ("Esv5", 8, 64, 0.504, None, 0, 0.70),
}

PROVIDERS = {
    "aws": {
        "region": "us-east-1",
        "general_purpose_families": ["c6i", "m6i", "r6i"],
        "source": "general-purpose $/vCPU-h and $/GiB-h: least-squares fit of "
        "the catalog's m6i (4 GiB/vCPU), c6i (2) and r6i (8) prices",
    },
    "azure": {
        "region": "eastus",
        "general_purpose_families": ["Dsv5", "Esv5"],
        "source": "general-purpose $/vCPU-h and $/GiB-h: least-squares fit of "
        "the catalog's Dsv5 (4 GiB/vCPU) and Esv5 (8) prices",
    },
    "gcp": {
        "region": "us-central1",
        "general_purpose_families": ["n2"],
        "source": "general-purpose $/vCPU-h and $/GiB-h: least-squares fit of "
        "the catalog's n2-standard/-highcpu/-highmem prices (reproduces the "
        "N2 SKU rates)",
    },
}

# Canonical GPU models. plausible_hourly bounds a per-GPU price: cheap
# neocloud/on-prem amortisation at the bottom, the dearest cloud share
# with headroom at the top. relative_compute: dense FP16 tensor TFLOPS
# (approximate for A10G).
MIG_7 = ["1g", "1g", "2g", "3g", "4g", "7g"]
MIG_7_COUNT = [7, 4, 3, 2, 1, 1]


def mig7(memories):
    return [
        {
            "name": f"{g}.{m}gb",
            "compute_slices": int(g[:-1]),
            "memory_gib": m,
            "max_instances": n,
        }
        for g, m, n in zip(MIG_7, memories, MIG_7_COUNT)
    ]


def mig(profiles):
    return [
        {
            "name": f"{g}g.{m}gb",
            "compute_slices": g,
            "memory_gib": m,
            "max_instances": n,
        }
        for g, m, n in profiles
    ]


MIG_SOURCE = "MIG profiles: NVIDIA mig-parted config-default.yaml"
GPU_MODELS = {
    "H100-80GB": dict(memory_gib=80, plausible_hourly=[1.0, 15.0], idle_watts=70,
                      tdp_watts=700, relative_compute=989, total_slices=7,
                      mig_profiles=mig7([10, 20, 20, 40, 40, 80])),
    "H100-NVL-94GB": dict(memory_gib=94, plausible_hourly=[1.0, 14.0], idle_watts=60,
                          tdp_watts=400, relative_compute=835, total_slices=7,
                          mig_profiles=mig7([12, 24, 24, 47, 47, 94]),
                          stated_hourly=4.5),
    "H200-141GB": dict(memory_gib=141, plausible_hourly=[1.5, 18.0], idle_watts=75,
                       tdp_watts=700, relative_compute=989, total_slices=7,
                       mig_profiles=mig7([18, 35, 35, 71, 71, 141])),
    "B200": dict(memory_gib=180, plausible_hourly=[2.0, 25.0], idle_watts=120,
                 tdp_watts=1000, relative_compute=2250, total_slices=7,
                 mig_profiles=mig([(1, 23, 7), (1, 45, 4), (2, 45, 3), (3, 90, 2),
                                   (4, 90, 1), (7, 180, 1)]),
                 stated_hourly=12.5),
    "A100-40GB": dict(memory_gib=40, plausible_hourly=[0.4, 6.0], idle_watts=50,
                      tdp_watts=400, relative_compute=312, total_slices=7,
                      mig_profiles=mig([(1, 5, 7), (1, 10, 4), (2, 10, 3), (3, 20, 2),
                                        (4, 20, 1), (7, 40, 1)])),
    "A100-80GB": dict(memory_gib=80, plausible_hourly=[0.6, 8.0], idle_watts=50,
                      tdp_watts=400, relative_compute=312, total_slices=7,
                      mig_profiles=mig7([10, 20, 20, 40, 40, 80])),
    "A30-24GB": dict(memory_gib=24, plausible_hourly=[0.2, 3.0], idle_watts=30,
                     tdp_watts=165, relative_compute=165, total_slices=4,
                     mig_profiles=mig([(1, 6, 4), (2, 12, 2), (4, 24, 1)]),
                     stated_hourly=0.8),
    "L40S": dict(memory_gib=48, plausible_hourly=[0.4, 4.0], idle_watts=35,
                 tdp_watts=350, relative_compute=362, total_slices=0, mig_profiles=[]),
    "L4": dict(memory_gib=24, plausible_hourly=[0.15, 2.0], idle_watts=16,
               tdp_watts=72, relative_compute=121, total_slices=0, mig_profiles=[]),
    "A10G": dict(memory_gib=24, plausible_hourly=[0.2, 2.5], idle_watts=16,
                 tdp_watts=150, relative_compute=70, total_slices=0, mig_profiles=[]),
    "T4": dict(memory_gib=16, plausible_hourly=[0.08, 1.2], idle_watts=10,
               tdp_watts=70, relative_compute=65, total_slices=0, mig_profiles=[]),
}
STATED_SOURCE = {
    "H100-NVL-94GB": "stated estimate: Azure NC40ads_H100_v5 list price less its "
    "CPU/RAM share; no catalog instance carries this model",
    "B200": "stated estimate: AWS p6-b200.48xlarge list price (~113.93 $/h) less "
    "its CPU/RAM share, per GPU; no catalog instance carries this model",
    "A30-24GB": "stated estimate from reseller/on-prem amortisation; no major "
    "cloud sells it as an instance type",
}

TB = 1024  # GB per TB in the providers' tier tables
EGRESS = {
    "aws": {
        "cross_az_per_gb": 0.01, "cross_az_both_directions": True,
        "cross_region_per_gb": 0.02, "internet_free_gb": 100,
        "internet_tiers": [
            {"up_to_gb": 10 * TB, "per_gb": 0.09},
            {"up_to_gb": 50 * TB, "per_gb": 0.085},
            {"up_to_gb": 150 * TB, "per_gb": 0.07},
            {"up_to_gb": None, "per_gb": 0.05},
        ],
        "nat_gateway_per_gb": 0.045, "nat_gateway_hourly": 0.045,
        "vpc_endpoint_per_gb": 0.01, "gateway_endpoint_per_gb": 0.0,
        "source": "AWS EC2 data transfer and VPC pricing pages (us-east-1): "
        "cross-AZ $0.01/GB charged in each direction; first 100 GB/month to the "
        "internet free across services; interface endpoint $0.01/GB, gateway "
        "endpoint (S3, DynamoDB) free; " + LIST_CAVEAT,
    },
    "gcp": {
        "cross_az_per_gb": 0.01, "cross_az_both_directions": False,
        "cross_region_per_gb": 0.02, "internet_free_gb": 0,
        "internet_tiers": [
            {"up_to_gb": 1 * TB, "per_gb": 0.12},
            {"up_to_gb": 10 * TB, "per_gb": 0.11},
            {"up_to_gb": None, "per_gb": 0.08},
        ],
        "nat_gateway_per_gb": 0.045, "nat_gateway_hourly": 0.045,
        "vpc_endpoint_per_gb": 0.0, "gateway_endpoint_per_gb": 0.0,
        "source": "GCP VPC network pricing (premium tier, from North America): "
        "inter-zone $0.01/GB charged once; Cloud NAT processing $0.045/GB; "
        "Private Google Access free; " + LIST_CAVEAT,
    },
    "azure": {
        "cross_az_per_gb": 0.0, "cross_az_both_directions": False,
        "cross_region_per_gb": 0.02, "internet_free_gb": 100,
        "internet_tiers": [
            {"up_to_gb": 10 * TB, "per_gb": 0.087},
            {"up_to_gb": 50 * TB, "per_gb": 0.083},
            {"up_to_gb": 150 * TB, "per_gb": 0.07},
            {"up_to_gb": None, "per_gb": 0.05},
        ],
        "nat_gateway_per_gb": 0.045, "nat_gateway_hourly": 0.045,
        "vpc_endpoint_per_gb": 0.01, "gateway_endpoint_per_gb": 0.0,
        "source": "Azure bandwidth pricing (Microsoft premium network, from North "
        "America): first 100 GB/month free; availability-zone transfer not "
        "charged; NAT Gateway $0.045/GB + $0.045/h; Private Link $0.01/GB; "
        + LIST_CAVEAT,
    },
}

STORAGE = {
    "aws": {
        "classes": {"gp3": 0.08, "gp2": 0.10, "io2": 0.125, "st1": 0.045,
                    "sc1": 0.015, "efs-standard": 0.30},
        "default_class": "gp3",
        "aliases": {"efs": "efs-standard", "efs-sc": "efs-standard"},
        "source": "Amazon EBS and EFS pricing, us-east-1, $/GiB-month; " + LIST_CAVEAT,
    },
    "gcp": {
        "classes": {"pd-balanced": 0.10, "pd-ssd": 0.17, "pd-standard": 0.04},
        "default_class": "pd-balanced",
        "aliases": {"standard-rwo": "pd-balanced", "premium-rwo": "pd-ssd",
                    "standard": "pd-standard"},
        "source": "GCP persistent disk pricing, us-central1, $/GiB-month; "
        "aliases are GKE's built-in StorageClasses; " + LIST_CAVEAT,
    },
    "azure": {
        "classes": {"premium-ssd": 0.15, "standard-ssd": 0.075, "standard-hdd": 0.045},
        "default_class": "standard-ssd",
        "aliases": {"Premium_LRS": "premium-ssd", "StandardSSD_LRS": "standard-ssd",
                    "Standard_LRS": "standard-hdd", "managed-csi": "standard-ssd",
                    "managed-csi-premium": "premium-ssd", "managed": "standard-hdd",
                    "managed-premium": "premium-ssd", "default": "standard-ssd"},
        "source": "Azure managed disk pricing, eastus, $/GiB-month approximated "
        "from the tiered disk sizes (premium SSD is an approximation); aliases "
        "are AKS's built-in StorageClasses and disk SKUs; " + LIST_CAVEAT,
    },
}

# Listed in order of preference: family-specific entries first, then the
# general ones, the most flexible first.
COMMITMENTS = {
    "aws": [
        {"kind": "savings_plan", "families": ["p4d", "p4de", "p5", "p5en"],
         "one_year": 0.30, "three_year": 0.45,
         "source": "EC2 Instance Savings Plan for P4/P5 GPU families, no upfront, "
         "typical; " + LIST_CAVEAT},
        {"kind": "savings_plan", "families": [], "one_year": 0.28, "three_year": 0.50,
         "source": "Compute Savings Plan, no upfront, typical for general compute; "
         + LIST_CAVEAT},
        {"kind": "reserved_instance", "families": [], "one_year": 0.40,
         "three_year": 0.60,
         "source": "EC2 Instance Savings Plan / Standard Reserved Instance, "
         "typical; " + LIST_CAVEAT},
    ],
    "gcp": [
        {"kind": "committed_use", "families": ["a2", "a3", "g2"], "one_year": 0.37,
         "three_year": 0.55,
         "source": "resource-based committed use discount for GPUs, typical; "
         + LIST_CAVEAT},
        {"kind": "committed_use", "families": [], "one_year": 0.37, "three_year": 0.55,
         "source": "resource-based committed use discount, typical; " + LIST_CAVEAT},
    ],
    "azure": [
        {"kind": "reserved_instance", "families": [], "one_year": 0.35,
         "three_year": 0.55,
         "source": "Azure Reserved VM Instances, typical; " + LIST_CAVEAT},
    ],
}

DEFAULTS = {
    "cpu_core_hourly": 0.031611,
    "memory_gib_hourly": 0.004237,
    "gpu_hourly": 0.95,
    "spot_discount": 0.6,
    "storage_gib_month": 0.04,
    "source": "OpenCost default pricing (GCP us-central1 figures) for nodes the "
    "catalog cannot price; spot_discount: Tally's fallback when neither the "
    "instance nor its family has one",
}


def aws_instances(advisor):
    ranges = {r["index"]: r["label"] for r in advisor["ranges"]}
    linux = advisor["spot_advisor"]["us-east-1"]["Linux"]
    out = []
    for name, (price, gpu, count) in AWS.items():
        shape = advisor["instance_types"].get(name)
        if shape is None:
            sys.exit(f"{name}: not in the advisor snapshot; add its shape by hand")
        spot = linux.get(name)
        out.append({
            "provider": "aws",
            "instance_type": name,
            "family": name.split(".")[0],
            "vcpus": shape["cores"],
            "memory_gib": shape["ram_gb"],
            "gpu_model": gpu,
            "gpu_count": count,
            "on_demand_hourly": price,
            "spot_discount": spot["s"] / 100 if spot else None,
            "interruption_bucket": ranges[spot["r"]] if spot else None,
            "source": AWS_SOURCE
            + (
                f"; after the June 2025 P4/P5 price cut (was {AWS_PRE_CUT[name]} $/h)"
                if name in AWS_PRE_CUT
                else ""
            ),
            "as_of": AS_OF,
        })
    return out


def table_instances(provider, table, source):
    return [
        {
            "provider": provider,
            "instance_type": name,
            "family": fam,
            "vcpus": vcpus,
            "memory_gib": mem,
            "gpu_model": gpu,
            "gpu_count": count,
            "on_demand_hourly": price,
            "spot_discount": spot,
            "interruption_bucket": None,
            "source": source,
            "as_of": AS_OF,
        }
        for name, (fam, vcpus, mem, price, gpu, count, spot) in table.items()
    ]


def general_purpose_rates(instances, provider, families):
    """Least squares of $/vCPU-h against GiB per vCPU: intercept is $/vCPU-h,
    slope $/GiB-h. Mirrors catalog.rs, so keep the two in step."""
    pts = [
        (i["memory_gib"] / i["vcpus"], i["on_demand_hourly"] / i["vcpus"])
        for i in instances
        if i["provider"] == provider and i["family"] in families and i["gpu_count"] == 0
    ]
    n = len(pts)
    mx = sum(x for x, _ in pts) / n
    my = sum(y for _, y in pts) / n
    sxx = sum((x - mx) ** 2 for x, _ in pts)
    sxy = sum((x - mx) * (y - my) for x, y in pts)
    slope = sxy / sxx
    return my - slope * mx, slope


def gpu_prices(instances):
    rates = {
        p: general_purpose_rates(instances, p, info["general_purpose_families"])
        for p, info in PROVIDERS.items()
    }
    cheapest = {}
    for i in instances:
        if i["gpu_count"] == 0:
            continue
        cpu, mem = rates[i["provider"]]
        share = (i["on_demand_hourly"] - cpu * i["vcpus"] - mem * i["memory_gib"]) / i[
            "gpu_count"
        ]
        best = cheapest.get(i["gpu_model"])
        if best is None or share < best[0]:
            cheapest[i["gpu_model"]] = (share, i["instance_type"], i["provider"])
    return cheapest


def build():
    with open(ADVISOR) as f:
        advisor = json.load(f)
    instances = (
        aws_instances(advisor)
        + table_instances("gcp", GCP, GCP_SOURCE)
        + table_instances("azure", AZURE, AZURE_SOURCE)
    )
    instances.sort(key=lambda i: (i["provider"], i["instance_type"]))
    cheapest = gpu_prices(instances)
    models = {}
    for name, spec in GPU_MODELS.items():
        spec = dict(spec)
        stated = spec.pop("stated_hourly", None)
        if name in cheapest:
            share, itype, provider = cheapest[name]
            spec["hourly"] = round(share, 4)
            spec["source"] = (
                f"cheapest GPU share of a catalog instance: {itype} ({provider}) "
                "less its CPU/RAM at the provider's general-purpose rates; " + MIG_SOURCE
            )
        else:
            spec["hourly"] = stated
            spec["source"] = STATED_SOURCE[name] + "; " + MIG_SOURCE
        models[name] = spec
    return {
        "version": 1,
        "as_of": AS_OF,
        "currency": "USD",
        "defaults": DEFAULTS,
        "providers": PROVIDERS,
        "instances": instances,
        "gpu_models": models,
        "egress": EGRESS,
        "storage": STORAGE,
        "commitments": COMMITMENTS,
    }


def main():
    text = json.dumps(build(), indent=1, sort_keys=True) + "\n"
    if "--check" in sys.argv[1:]:
        with open(OUT) as f:
            if f.read() != text:
                sys.exit(f"{OUT} is stale: run scripts/gen-pricing.py")
        return
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        f.write(text)


if __name__ == "__main__":
    main()
