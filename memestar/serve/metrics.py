"""Prometheus metrics of one server (its own registry, so two servers in a process keep theirs apart)."""

import os

import psutil
import torch
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
BATCH_BUCKETS = (1, 2, 3, 4, 5, 6, 7, 8, 16)
STAGES = ("queue", "text", "denoise", "decode", "encode")


class Metrics:
    def __init__(self, queue_depth, memes_loaded, device: torch.device):
        self.registry = r = CollectorRegistry()
        self.request_seconds = Histogram(
            "memestar_request_seconds", "HTTP request latency", ("route", "status"), buckets=LATENCY_BUCKETS, registry=r
        )
        self.stage_seconds = Histogram(
            "memestar_stage_seconds",
            "Time per generation stage (text, denoise and decode per batch; queue and encode per request)",
            ("stage",),
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "memestar_batch_size", "Clips per batch run on the device", buckets=BATCH_BUCKETS, registry=r
        )
        self.rejected = Counter(
            "memestar_rejected_requests", "Generation requests not run, by reason", ("reason",), registry=r
        )
        self.clips = Counter("memestar_clips", "Clips generated", registry=r)
        Gauge("memestar_queue_depth", "Generation requests waiting", registry=r).set_function(queue_depth)
        Gauge("memestar_memes_loaded", "Memes in memory", registry=r).set_function(memes_loaded)
        memory = Gauge(
            "memestar_device_memory_bytes",
            "Memory in use: the GPU allocator's on CUDA, else the process's resident set",
            registry=r,
        )
        if device.type == "cuda":
            memory.set_function(lambda: torch.cuda.memory_allocated(device))
        else:
            process = psutil.Process(os.getpid())
            memory.set_function(lambda: process.memory_info().rss)

    def observe_batch(self, clips: int, seconds: dict) -> None:
        self.batch_size.observe(clips)
        self.clips.inc(clips)
        for stage in ("text", "denoise", "decode"):
            self.stage_seconds.labels(stage).observe(seconds.get(stage, 0.0))

    def text(self) -> bytes:
        return generate_latest(self.registry)
