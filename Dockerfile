# Minimal image until the shipping issue; see charts/ for the deployment.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY controller ./controller
RUN pip install --no-cache-dir .
USER 65532:65532
ENTRYPOINT ["changelane", "run"]
