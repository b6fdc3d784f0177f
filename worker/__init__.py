"""imunban: reliable, rate-limited batch delivery of Tencent Cloud Chat audio-video group unbans."""

__version__ = "0.1.0"
