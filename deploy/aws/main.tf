# Corridor on AWS Lambda: three functions from one zip, SQS wake-ups with a dead-letter
# queue, an EventBridge schedule for the sweeper, API Gateway's HTTP API in front. The
# database (PostgreSQL: RDS or Aurora Serverless v2, through RDS Proxy) is yours; its URL is
# in the secret. See README.md in this folder.

locals {
  in_vpc     = length(var.subnet_ids) > 0
  kms        = var.kms_key_arn == "" ? null : var.kms_key_arn
  secret_arn = var.secret_arn != "" ? var.secret_arn : aws_secretsmanager_secret.settings[0].arn
  functions = {
    api     = { memory = var.api_memory_mb, timeout = 30 }
    worker  = { memory = var.worker_memory_mb, timeout = var.worker_timeout_s }
    sweeper = { memory = var.worker_memory_mb, timeout = var.worker_timeout_s }
  }
  # Settings every function shares; secrets come from the secret at a cold start.
  environment = merge({
    CORRIDOR_SQS_QUEUE_URL       = aws_sqs_queue.wakeups.url
    CORRIDOR_SQS_DEAD_LETTER_URL = aws_sqs_queue.dead_letters.url
    CORRIDOR_SECRET_ID           = local.secret_arn
    CORRIDOR_LAMBDA_RUN_FOR      = "${var.run_for_s}s"
    CORRIDOR_LOG_FORMAT          = "json"
    CORRIDOR_LOG                 = "info"
  }, var.environment)
  # The API serves one request per instance; the worker and the sweeper run several jobs at
  # once, each needing a connection now and then.
  per_function = {
    api     = { CORRIDOR_DB_POOL = tostring(var.db_pool) }
    worker  = { CORRIDOR_DB_POOL = tostring(var.worker_db_pool), CORRIDOR_WORKERS = tostring(var.worker_jobs_at_once) }
    sweeper = { CORRIDOR_DB_POOL = tostring(var.worker_db_pool), CORRIDOR_WORKERS = tostring(var.worker_jobs_at_once) }
  }
}

# --- The secret settings --------------------------------------------------------------

# Created empty: its value is put outside Terraform, so it never lands in the state.
resource "aws_secretsmanager_secret" "settings" {
  count       = var.secret_arn == "" ? 1 : 0
  name        = "${var.name}/settings"
  description = "Corridor's secret settings (JSON): DATABASE_URL, CORRIDOR_ADMIN_KEY, webhook secrets."
  kms_key_id  = local.kms
  #checkov:skip=CKV2_AWS_57:Rotating the database password and the admin key is the operator's procedure (put a new value; the functions read it at their next cold start), not a rotation Lambda.
}

# --- Wake-ups -------------------------------------------------------------------------

resource "aws_sqs_queue" "dead_letters" {
  name                              = "${var.name}-wakeups-dlq"
  message_retention_seconds         = 1209600
  sqs_managed_sse_enabled           = local.kms == null ? true : null
  kms_master_key_id                 = local.kms
  kms_data_key_reuse_period_seconds = local.kms == null ? null : 300
}

resource "aws_sqs_queue" "wakeups" {
  name = "${var.name}-wakeups"
  # AWS's guidance for a Lambda event source: at least six times the function's timeout.
  visibility_timeout_seconds        = 6 * var.worker_timeout_s
  message_retention_seconds         = 345600
  receive_wait_time_seconds         = 20
  sqs_managed_sse_enabled           = local.kms == null ? true : null
  kms_master_key_id                 = local.kms
  kms_data_key_reuse_period_seconds = local.kms == null ? null : 300
  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.dead_letters.arn
    maxReceiveCount     = var.max_receive_count
  })
}

resource "aws_sqs_queue_redrive_allow_policy" "dead_letters" {
  queue_url = aws_sqs_queue.dead_letters.id
  redrive_allow_policy = jsonencode({
    redrivePermission = "byQueue"
    sourceQueueArns   = [aws_sqs_queue.wakeups.arn]
  })
}

# --- Logs -----------------------------------------------------------------------------

resource "aws_cloudwatch_log_group" "functions" {
  for_each          = local.functions
  name              = "/aws/lambda/${var.name}-${each.key}"
  retention_in_days = var.log_retention_days
  kms_key_id        = local.kms
  #checkov:skip=CKV_AWS_338:Retention is the log_retention_days variable (30 days by default); a year of payment-step logs is the operator's choice, not a default.
  #checkov:skip=CKV_AWS_158:Encrypted with kms_key_arn when given; otherwise CloudWatch's own encryption at rest.
}

resource "aws_cloudwatch_log_group" "api_access" {
  name              = "/aws/apigateway/${var.name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = local.kms
  #checkov:skip=CKV_AWS_338:Retention is the log_retention_days variable.
  #checkov:skip=CKV_AWS_158:Encrypted with kms_key_arn when given; otherwise CloudWatch's own encryption at rest.
}

# --- Permissions: one role per function, each allowed only what it does ---------------

data "aws_iam_policy_document" "assume_lambda" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "function" {
  for_each           = local.functions
  name               = "${var.name}-${each.key}"
  assume_role_policy = data.aws_iam_policy_document.assume_lambda.json
}

data "aws_iam_policy_document" "function" {
  for_each = local.functions

  # Its own log group only.
  statement {
    sid       = "Logs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.functions[each.key].arn}:*"]
  }

  # The secret settings, read at a cold start.
  statement {
    sid       = "Settings"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [local.secret_arn]
  }

  # Every function commits units of work, and so sends their wake-ups.
  statement {
    sid       = "SendWakeups"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.wakeups.arn]
  }

  # The worker's event source mapping receives and deletes wake-ups.
  dynamic "statement" {
    for_each = each.key == "worker" ? [1] : []
    content {
      sid       = "ReceiveWakeups"
      actions   = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ChangeMessageVisibility"]
      resources = [aws_sqs_queue.wakeups.arn]
    }
  }

  # The sweeper records and deletes dead letters.
  dynamic "statement" {
    for_each = each.key == "sweeper" ? [1] : []
    content {
      sid       = "DrainDeadLetters"
      actions   = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"]
      resources = [aws_sqs_queue.dead_letters.arn]
    }
  }

  # X-Ray traces (tracing_config Active); the actions take no resource-level scoping.
  statement {
    sid       = "Tracing"
    actions   = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]
    resources = ["*"]
  }

  # Decrypting what the customer-managed key protects, when there is one.
  dynamic "statement" {
    for_each = local.kms == null ? [] : [1]
    content {
      sid       = "Kms"
      actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
      resources = [var.kms_key_arn]
    }
  }

  # Network interfaces in the VPC (the actions take no resource-level scoping).
  dynamic "statement" {
    for_each = local.in_vpc ? [1] : []
    content {
      sid = "VpcAccess"
      actions = [
        "ec2:CreateNetworkInterface", "ec2:DescribeNetworkInterfaces", "ec2:DeleteNetworkInterface",
        "ec2:AssignPrivateIpAddresses", "ec2:UnassignPrivateIpAddresses",
      ]
      resources = ["*"]
    }
  }
}

resource "aws_iam_role_policy" "function" {
  for_each = local.functions
  name     = "${var.name}-${each.key}"
  role     = aws_iam_role.function[each.key].id
  policy   = data.aws_iam_policy_document.function[each.key].json
}

# --- The three functions --------------------------------------------------------------

resource "aws_lambda_function" "function" {
  for_each         = local.functions
  function_name    = "${var.name}-${each.key}"
  role             = aws_iam_role.function[each.key].arn
  filename         = var.lambda_zip
  source_code_hash = filebase64sha256(var.lambda_zip)
  runtime          = "provided.al2023"
  # The custom runtime starts `bootstrap` with _HANDLER set to this: which part it is.
  handler                        = each.key
  architectures                  = [var.architecture]
  memory_size                    = each.value.memory
  timeout                        = each.value.timeout
  reserved_concurrent_executions = each.key == "api" ? var.api_reserved_concurrency : (each.key == "sweeper" ? 1 : -1)
  kms_key_arn                    = local.kms

  environment {
    variables = merge(local.per_function[each.key], local.environment)
  }

  logging_config {
    log_format = "Text"
    log_group  = aws_cloudwatch_log_group.functions[each.key].name
  }

  tracing_config {
    mode = "Active"
  }

  dynamic "vpc_config" {
    for_each = local.in_vpc ? [1] : []
    content {
      subnet_ids         = var.subnet_ids
      security_group_ids = var.security_group_ids
    }
  }

  depends_on = [aws_iam_role_policy.function]

  lifecycle {
    precondition {
      condition     = var.run_for_s < var.worker_timeout_s
      error_message = "run_for_s must be shorter than worker_timeout_s, so a run finishes the jobs it claimed."
    }
  }

  #checkov:skip=CKV_AWS_116:A failed invocation needs no Lambda DLQ: the worker's are SQS's (redrive policy), the sweeper's recur each minute, the API's are answered to the client.
  #checkov:skip=CKV_AWS_272:Code signing needs a signing profile this module cannot assume exists; the zip is built from the tagged source by cargo lambda.
  #checkov:skip=CKV_AWS_117:The functions run in a VPC when subnet_ids is given; without it they reach a database that is public behind TLS.
  #checkov:skip=CKV_AWS_115:Concurrency is bounded where it matters: the API by api_reserved_concurrency, the worker by the event source's maximum concurrency, the sweeper at 1.
  #checkov:skip=CKV_AWS_173:The environment holds no secret (the validation of var.environment refuses them); it is encrypted with kms_key_arn when given.
}

# The worker, woken by SQS; it answers with the wake-ups it could not handle, and only those
# are delivered again.
resource "aws_lambda_event_source_mapping" "wakeups" {
  event_source_arn                   = aws_sqs_queue.wakeups.arn
  function_name                      = aws_lambda_function.function["worker"].arn
  batch_size                         = 10
  maximum_batching_window_in_seconds = 0
  function_response_types            = ["ReportBatchItemFailures"]
  scaling_config {
    maximum_concurrency = max(2, var.worker_concurrency)
  }
}

# The sweeper, on a schedule.
resource "aws_cloudwatch_event_rule" "sweep" {
  name                = "${var.name}-sweep"
  description         = "Corridor's sweeper: recurring jobs, lost wake-ups, dead letters."
  schedule_expression = var.sweep_schedule
}

resource "aws_cloudwatch_event_target" "sweep" {
  rule = aws_cloudwatch_event_rule.sweep.name
  arn  = aws_lambda_function.function["sweeper"].arn
  retry_policy {
    maximum_retry_attempts       = 0
    maximum_event_age_in_seconds = 60
  }
}

# A sweep that cannot start (the previous one still running) is dropped, not queued: the
# next one comes within a minute.
resource "aws_lambda_function_event_invoke_config" "sweeper" {
  function_name                = aws_lambda_function.function["sweeper"].function_name
  maximum_event_age_in_seconds = 60
  maximum_retry_attempts       = 0
}

resource "aws_lambda_permission" "sweep" {
  statement_id  = "AllowEventBridgeSchedule"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.function["sweeper"].function_name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.sweep.arn
}

# --- The HTTP API ---------------------------------------------------------------------

resource "aws_apigatewayv2_api" "http" {
  name          = var.name
  protocol_type = "HTTP"
  description   = "Corridor's HTTP API (every route goes to the api function)."
}

resource "aws_apigatewayv2_integration" "api" {
  api_id                 = aws_apigatewayv2_api.http.id
  integration_type       = "AWS_PROXY"
  integration_uri        = aws_lambda_function.function["api"].invoke_arn
  payload_format_version = "2.0"
  timeout_milliseconds   = 30000
}

resource "aws_apigatewayv2_route" "all" {
  api_id    = aws_apigatewayv2_api.http.id
  route_key = "$default"
  target    = "integrations/${aws_apigatewayv2_integration.api.id}"
  #checkov:skip=CKV_AWS_309:Corridor authenticates every request itself (merchant and admin API keys, the dashboard's session); /healthz and the provider webhooks (HMAC-signed) are public by design.
}

resource "aws_apigatewayv2_stage" "default" {
  api_id      = aws_apigatewayv2_api.http.id
  name        = "$default"
  auto_deploy = true
  access_log_settings {
    destination_arn = aws_cloudwatch_log_group.api_access.arn
    format = jsonencode({
      requestId = "$context.requestId", ip = "$context.identity.sourceIp",
      method    = "$context.httpMethod", path = "$context.path", status = "$context.status",
      latencyMs = "$context.responseLatency", integrationError = "$context.integrationErrorMessage"
    })
  }
  # The deployment-wide ceiling (not per client: Corridor's own limits are per client but
  # per function instance; a WAF rate rule on the stage is the per-client one at the edge).
  default_route_settings {
    throttling_burst_limit = var.api_throttle_burst
    throttling_rate_limit  = var.api_throttle_rate
  }
}

resource "aws_lambda_permission" "api" {
  statement_id  = "AllowApiGateway"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.function["api"].function_name
  principal     = "apigateway.amazonaws.com"
  source_arn    = "${aws_apigatewayv2_api.http.execution_arn}/*/*"
}

# --- Reaching SQS and Secrets Manager from private subnets ----------------------------

# These keep SQS and Secrets Manager traffic inside the VPC. HTTP providers, merchant
# webhooks and the alert webhook are on the internet: private subnets still need a NAT
# gateway (or another route out) for them.

resource "aws_security_group" "endpoints" {
  count       = local.in_vpc && var.create_vpc_endpoints ? 1 : 0
  name        = "${var.name}-endpoints"
  description = "Corridor's SQS and Secrets Manager endpoints: HTTPS from the functions."
  vpc_id      = var.vpc_id
}

resource "aws_vpc_security_group_ingress_rule" "endpoints" {
  for_each                     = local.in_vpc && var.create_vpc_endpoints ? toset(var.security_group_ids) : toset([])
  security_group_id            = aws_security_group.endpoints[0].id
  description                  = "HTTPS from Corridor's functions"
  referenced_security_group_id = each.value
  ip_protocol                  = "tcp"
  from_port                    = 443
  to_port                      = 443
}

resource "aws_vpc_endpoint" "interface" {
  for_each            = local.in_vpc && var.create_vpc_endpoints ? toset(["sqs", "secretsmanager"]) : toset([])
  vpc_id              = var.vpc_id
  service_name        = "com.amazonaws.${var.region}.${each.key}"
  vpc_endpoint_type   = "Interface"
  subnet_ids          = var.subnet_ids
  security_group_ids  = [aws_security_group.endpoints[0].id]
  private_dns_enabled = true
}
