"""Pipeline stages: each module holds plain, testable logic and a thin KFP component."""
