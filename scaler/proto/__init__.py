"""Generated gRPC code for protos/externalscaler.proto (`make proto`); do not edit."""
