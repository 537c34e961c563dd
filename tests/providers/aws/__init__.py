"""Tests for providers/aws (a package so module names never clash with other providers')."""
