# Broken on purpose: a RUN command with a typo.
FROM python:3.11-slim
WORKDIR /app
COPY requirements.txt ./
RUN pyhton -m compileall -q /usr/local/lib/python3.11
COPY app.py ./
CMD ["python", "app.py"]
