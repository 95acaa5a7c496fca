"""Tests of the deployment files: Dockerfile, docker-compose stack, nginx, Kubernetes."""
