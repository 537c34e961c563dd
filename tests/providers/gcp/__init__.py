"""Tests of providers/gcp (a package so its module names never clash with other providers')."""
