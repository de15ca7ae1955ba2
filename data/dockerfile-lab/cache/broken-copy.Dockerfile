# Broken on purpose: COPY names a file that is not in the build context.
FROM python:3.11-slim
WORKDIR /app
COPY requirements.txt ./
COPY server.py ./
CMD ["python", "server.py"]
