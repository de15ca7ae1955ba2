# Broken on purpose: an instruction Docker does not know.
FROM python:3.11-slim
WORKDIR /app
COPPY app.py ./
CMD ["python", "app.py"]
