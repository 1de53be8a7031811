"""harness: the portability study of Sabry & Belz (2024), seeded, paired, resumable, with statistics."""
