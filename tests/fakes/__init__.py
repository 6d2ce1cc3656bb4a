"""Test doubles shared by the test packages (real protocols on 127.0.0.1, no mocks)."""
