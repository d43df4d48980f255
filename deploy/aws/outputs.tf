output "api_url" {
  description = "Corridor's base URL (API Gateway's default endpoint)."
  value       = aws_apigatewayv2_api.http.api_endpoint
}

output "secret_arn" {
  description = "The secret to put the secret settings in (aws secretsmanager put-secret-value)."
  value       = local.secret_arn
}

output "wakeup_queue_url" {
  description = "The SQS queue of wake-ups."
  value       = aws_sqs_queue.wakeups.url
}

output "dead_letter_queue_url" {
  description = "Wake-ups SQS gave up on; the sweeper records each as a dead job (DEAD_JOB alert)."
  value       = aws_sqs_queue.dead_letters.url
}

output "function_names" {
  description = "The three functions."
  value       = { for k, f in aws_lambda_function.function : k => f.function_name }
}
