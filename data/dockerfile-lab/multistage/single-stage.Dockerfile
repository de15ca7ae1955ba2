# The same site in one stage: the shipped image keeps Python and everything else it came with.
FROM python:3.11-slim
WORKDIR /src
COPY generate.py ./
RUN python generate.py
EXPOSE 8080
CMD ["python", "-m", "http.server", "8080", "--directory", "/site"]
